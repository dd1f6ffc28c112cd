"""Kawai jobs through the whole pipeline against the sandbox: a synchronous
provider whose response holds the images."""

import io

from PIL import Image


from playground.generations.pipeline import create
from playground.generations.models import Generation, InputImage

from tests.helpers import run_tasks


def png(width, height, color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def left_keep_mask(width, height) -> bytes:
    img = Image.new("RGB", (width, height), (0, 0, 0))
    img.paste((255, 255, 255), (width // 2, 0, width, height))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_it_keeps_every_base64_image_of_a_job(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kawai", model="generations", params={
        "prompt": "two sailboats on a calm bay", "n": 2, "size": "512x512", "response_format": "b64_json",
    })
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    images = list(gen.images.all())
    assert [i.index for i in images] == [0, 1]
    assert all((i.width, i.height) == (512, 512) for i in images)
    assert images[0].sha256 != images[1].sha256
    assert gen.credits_used == gen.cost_estimate > 0  # no cost reported: the estimate is kept


def test_it_edits_an_uploaded_image_inside_the_mask_only(sandbox, team, user):
    source = InputImage.from_bytes(team=team, owner=user, data=png(96, 64, (200, 60, 40)))
    mask = InputImage.from_bytes(team=team, owner=user, data=left_keep_mask(96, 64))
    gen = create.create(team=team, owner=user, provider="kawai", model="edits", params={
        "prompt": "add a hot air balloon", "image": str(source.uuid), "mask": str(mask.uuid), "n": 1,
    })
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    img = gen.images.get()
    assert (img.width, img.height) == (96, 64)  # an edit keeps the input's size by default
    with img.file.open("rb") as fh:
        pixels = Image.open(fh).convert("RGB")
        assert pixels.getpixel((3, 60)) == (200, 60, 40)  # black in the mask: kept


def test_a_failed_job_keeps_its_params_and_the_providers_reason(sandbox, team, user):
    params = {"prompt": "a meadow at noon", "n": 1, "size": "5000x5000"}
    gen = create.create(team=team, owner=user, provider="kawai", model="generations", params=params)
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.params == params
    assert (gen.error_kind, gen.error_field) == ("validation", "size")
    assert "between 64 and 4096" in gen.error_message
    assert gen.credits_used is None and not gen.images.exists()


def test_a_blocked_prompt_fails_without_retrying(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kawai", model="generations",
                      params={"prompt": "a quiet harbour [blocked]"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert (gen.error_kind, gen.error_code) == ("content_blocked", "content_policy_violation")
    assert gen.attempts == 0
    assert gen.params == {"prompt": "a quiet harbour [blocked]"}
