"""With an input image (picked or uploaded), the comparison offers the
models that take one and sends it to each in that model's own field (and
mode); the sandbox fetches it from the app."""

import io

from django.urls import reverse
from PIL import Image
import pytest

from playground.compare.models import Cell
from playground.generations.models import InputImage

from tests.compare.util import newest, post_new
from tests.helpers import run_tasks


def png(size=(400, 300), color=(30, 90, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def app_url(sandbox, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


def test_a_picked_input_image_goes_to_each_models_image_field(client_in, app_url, team, user):
    picked = InputImage.from_bytes(team=team, owner=user, data=png())
    page = client_in.get(reverse("compare_new")).content.decode()
    assert f'value="{picked.uuid}"' in page
    r = post_new(client_in, image=str(picked.uuid), models=["kie:nano-banana", "kie:flux-kontext"], seeds="9")
    assert r.status_code == 302
    cells = list(Cell.objects.filter(row__comparison=newest()).select_related("generation"))
    by_model = {c.model: c for c in cells}
    assert by_model["nano-banana"].params["model"] == "google/nano-banana-edit"
    assert {c.params["image"] for c in cells} == {str(picked.uuid)}
    for c in cells:
        run_tasks(until=c.generation)
        assert c.generation.status == "succeeded", c.generation.error_message
        assert c.generation.has_input


def test_an_uploaded_image_is_stored_and_used(client_in, app_url, team):
    upload = io.BytesIO(png())
    upload.name = "input.png"
    r = post_new(client_in, upload=upload, models=["kvid:image-to-image"], aspect="4:3")
    assert r.status_code == 302
    stored = InputImage.objects.get(team=team)
    cell = Cell.objects.get(row__comparison=newest())
    assert cell.params["image"] == str(stored.uuid) and cell.params["aspect_ratio"] == "4:3"
    run_tasks(until=cell.generation)
    assert cell.generation.status == "succeeded", cell.generation.error_message
    # Not an image: a clear field error, nothing stored.
    bad = io.BytesIO(b"not an image")
    bad.name = "x.png"
    r = post_new(client_in, upload=bad, models=["kvid:image-to-image"])
    assert r.status_code == 400 and InputImage.objects.count() == 1
    # A model that takes no input image is refused with one.
    r = post_new(client_in, image=str(stored.uuid), models=["kie:seedream-v4"])
    assert r.status_code == 400 and "take no input image" in r.content.decode()
