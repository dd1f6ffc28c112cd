"""KIE's recommended pipeline in a few clicks: generate, upscale the result,
remove its background; each step a generation linked to its source."""

from django.urls import reverse
import pytest

from playground.generations.models import Generation, InputImage

from tests.helpers import run_tasks


@pytest.mark.django_db(transaction=True)
def test_generate_then_upscale_then_remove_background(client, user, team, sandbox, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url  # the sandbox fetches input images from the app
    client.force_login(user)
    client.post(reverse("playground") + "?provider=kie&model=seedream-v4",
                {"prompt": "a teapot on a table", "image_size": "square", "image_resolution": "1K",
                 "num_inference_steps": "30"})
    first = Generation.objects.get()
    run_tasks(until=first)
    assert first.status == Generation.SUCCEEDED

    previous = first
    for model in ("recraft-upscale", "recraft-remove-background"):
        img = previous.images.get()
        detail = client.get(previous.get_absolute_url()).content.decode()
        assert f'value="kie:{model}"' in detail  # offered as a next step
        response = client.post(reverse("use_as_input", args=[img.uuid]), {"target": f"kie:{model}"})
        form_url = response["Location"]
        assert f"model={model}" in form_url
        inp = InputImage.objects.get(source=img)
        page = client.get(form_url).content.decode()
        assert f'name="image__ref" value="{inp.uuid}"' in page
        client.post(form_url, {"image__ref": str(inp.uuid), "input": str(inp.uuid)})
        step = Generation.objects.order_by("-created_at").first()
        assert step.model == model and step.source_image == img
        run_tasks(until=step)
        assert step.status == Generation.SUCCEEDED, step.error_message
        previous = step

    upscaled = Generation.objects.get(model="recraft-upscale").images.get()
    assert (upscaled.width, upscaled.height) == (2048, 2048)
    cutout = previous.images.get()
    assert cutout.content_type == "image/png"
    from PIL import Image

    with cutout.file.open("rb") as fh:
        assert Image.open(fh).mode == "RGBA"


def test_use_as_input_without_a_target_opens_the_first_model_that_takes_an_image(client_in, team, user, sandbox):
    from playground.generations.pipeline import create

    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a fern"})
    run_tasks(until=gen)
    response = client_in.post(reverse("use_as_input", args=[gen.images.get().uuid]))
    page = client_in.get(response["Location"]).content.decode()
    assert "Nano Banana" in page and 'name="image__ref"' in page
