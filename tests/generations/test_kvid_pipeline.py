"""kvid.ai jobs through the whole pipeline: submit, poll status, fetch the
result, download and keep the images."""

from decimal import Decimal
import io

from PIL import Image, ImageStat

from playground.generations.models import Generation, InputImage

from tests.factories import job
from tests.helpers import run_tasks


def test_it_keeps_every_image_of_a_multi_image_job(sandbox, team, user):
    gen = job(team, user, "kvid", "text-to-image", prompt="a koi pond with lily pads", size_mode="custom", width=512, height=768,
               num_images=2, output_format="png", seed=7)
    assert gen.cost_estimate == Decimal("6")
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.provider_job_id.startswith("img_")
    images = list(gen.images.order_by("index"))
    assert [(i.width, i.height, i.content_type) for i in images] == [(512, 768, "image/png")] * 2
    assert images[0].sha256 != images[1].sha256
    assert gen.credits_used == Decimal("6")  # what the result reported


def test_it_keeps_params_and_the_providers_message_when_a_job_fails(sandbox, team, user):
    gen = job(team, user, "kvid", "text-to-image", prompt="a snowy pine forest [fail]", aspect_ratio="4:3", size_mode="aspect_ratio")
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "failed"
    assert "Generation failed" in gen.error_message
    params = dict(gen.params)
    assert isinstance(params.pop("seed"), int)  # an empty seed is drawn when the job is created
    assert params == {"prompt": "a snowy pine forest [fail]", "aspect_ratio": "4:3", "size_mode": "aspect_ratio"}
    assert gen.credits_used is None
    assert not gen.images.exists()


def test_it_edits_an_uploaded_image_that_the_provider_fetches_from_the_app(sandbox, live_server, settings, team, user):
    settings.PUBLIC_BASE_URL = live_server.url
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 30, 230)).save(buf, "PNG")
    source = InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())
    gen = job(team, user, "kvid", "image-to-image", prompt="add a small boat", image=str(source.uuid),
               size_mode="aspect_ratio", aspect_ratio="16:9")
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    img = gen.images.get()
    assert (img.width, img.height, img.content_type) == (1024, 576, "image/jpeg")
    with img.file.open("rb") as fh:
        red, green, blue = ImageStat.Stat(Image.open(fh).convert("RGB")).median
    assert blue > 150 and red < 100  # the blue source image shows through
