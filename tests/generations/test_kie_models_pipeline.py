"""A full job for every KIE.ai model against the sandbox, and the pipeline
the contract describes: generate, then upscale the result, then remove its
background, each step fed the previous image."""

from __future__ import annotations

from decimal import Decimal
import io

import pytest
from PIL import Image

from playground.generations.models import Generation, InputImage

from tests.factories import job
from tests.helpers import run_tasks


def pixels(img):
    with img.file.open("rb") as fh:
        out = Image.open(fh)
        out.load()
    return out


BLUE = (20, 40, 220)


def share_of(img, color, tol=30) -> float:
    """The share of the image (sampled) within `tol` of a colour."""
    small = img.convert("RGB").resize((64, 48), Image.Resampling.NEAREST)
    near = [all(abs(a - b) < tol for a, b in zip(small.getpixel((x, y)), color)) for x in range(64) for y in range(48)]
    return sum(near) / len(near)


def upload(team, user, size=(400, 300), color=BLUE):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())


@pytest.fixture
def app_url(sandbox, live_server, settings):
    """The sandbox fetches input images from the app's signed URLs."""
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.mark.parametrize("model, params, sizes, credits", [
    ("nano-banana", {"prompt": "a teapot on a table", "model": "google/nano-banana", "width": 800, "height": 600,
                     "steps": 24, "seed": 2}, [(800, 600)], "4"),
    ("qwen", {"prompt": "a bakery sign that says BREAD", "image_size": "landscape_16_9",
              "acceleration_level": "regular"}, [(1024, 576)], "7"),
    ("flux-kontext", {"prompt": "a lake under mountains", "model": "flux-kontext-max", "aspect_ratio": "1:1",
                      "prompt_upsampling": True}, [(1024, 1024)], "12"),
    ("gpt4o-image", {"prompt": "a poster of a humpback whale", "size": "3:2", "n_variants": 2},
     [(1536, 1024)] * 2, "10"),
    ("midjourney", {"prompt": "a castle above the clouds", "task_type": "mj_txt2img", "version": "7",
                    "speed": "Fast", "stylization": 200, "weirdness": 50}, [(1024, 1024)] * 4, "25"),
])
def test_it_runs_a_text_to_image_job_for_each_model_and_keeps_every_image(sandbox, team, user, model, params,
                                                                            sizes, credits):
    gen = job(team, user, "kie", model, **params)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert [(i.width, i.height) for i in gen.images.all()] == sizes
    assert len({i.sha256 for i in gen.images.all()}) == len(sizes)  # distinct images, not one repeated
    assert gen.credits_used == gen.cost_estimate == Decimal(credits)


@pytest.mark.parametrize("model, params, count", [
    ("nano-banana", {"prompt": "add a small red boat", "model": "google/nano-banana-edit", "width": 512,
                     "height": 384}, 1),
    ("flux-kontext", {"prompt": "add a small red boat", "aspect_ratio": "4:3"}, 1),
    ("gpt4o-image", {"prompt": "add a small red boat", "n_variants": 4}, 4),
    ("midjourney", {"prompt": "add a small red boat", "task_type": "mj_img2img"}, 4),
])
def test_it_edits_an_uploaded_image_that_the_sandbox_fetches_from_the_app(app_url, team, user, model, params, count):
    source = upload(team, user)
    gen = job(team, user, "kie", model, image=str(source.uuid), **params)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    results = list(gen.images.all())
    assert len(results) == count
    for result in results:
        assert share_of(pixels(result), BLUE) > 0.1  # the blue input shows through the edit


def test_it_chains_generate_then_upscale_then_remove_background(app_url, team, user):
    first = job(team, user, "kie", "seedream-v4", prompt="a single red apple on a plain table", image_size="landscape_4_3",
                 seed=11)
    run_tasks(until=first)
    assert first.status == Generation.SUCCEEDED, first.error_message
    generated = first.images.get()

    as_input = InputImage.from_bytes(team=team, owner=user, data=generated.file.open("rb").read(), source=generated)
    upscale = job(team, user, "kie", "recraft-upscale", image=str(as_input.uuid))
    run_tasks(until=upscale)
    assert upscale.status == Generation.SUCCEEDED, upscale.error_message
    bigger = upscale.images.get()
    assert upscale.source_image == generated
    assert (bigger.width, bigger.height) == (2 * generated.width, 2 * generated.height)
    assert upscale.credits_used == Decimal("4")

    as_input = InputImage.from_bytes(team=team, owner=user, data=bigger.file.open("rb").read(), source=bigger)
    cutout = job(team, user, "kie", "recraft-remove-background", image=str(as_input.uuid))
    run_tasks(until=cutout)
    assert cutout.status == Generation.SUCCEEDED, cutout.error_message
    final = cutout.images.get()
    assert cutout.source_image == bigger
    assert (final.width, final.height, final.content_type) == (bigger.width, bigger.height, "image/png")
    clear = pixels(final)
    assert clear.mode == "RGBA"
    alpha = clear.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0  # background gone
    assert alpha.getextrema() == (0, 255)  # the subject stays
    assert cutout.credits_used == Decimal("2")


def test_it_records_the_credit_figure_of_the_table_at_the_time_of_the_job(sandbox, settings, team, user):
    settings.KIE_CREDITS = {"qwen:high": "8.5"}
    gen = job(team, user, "kie", "qwen", prompt="a lantern at night", acceleration_level="high")
    settings.KIE_CREDITS = {"qwen:high": "20"}  # a later change of prices does not rewrite history
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.credits_used == Decimal("8.5")


def test_it_fails_a_utility_job_whose_image_was_removed_and_sends_nothing(sandbox, team, user):
    source = upload(team, user)
    gen = job(team, user, "kie", "recraft-upscale", image=str(source.uuid))
    source.delete()
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind, gen.error_field) == (Generation.FAILED, "validation", "image")
    assert gen.provider_job_id == ""


def test_it_fails_a_midjourney_job_that_fails_at_the_provider_without_charging(sandbox, team, user):
    gen = job(team, user, "kie", "midjourney", prompt="a quiet harbour [fail]", task_type="mj_txt2img")
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind, gen.error_code) == (Generation.FAILED, "failed", "generation_failed")
    assert gen.credits_used is None and not gen.images.exists()
