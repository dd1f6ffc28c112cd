"""kvid.ai adapter against its sandbox over real HTTP (shared/providers/kvid.md)."""

from decimal import Decimal
import io
import re
import sqlite3
import time

import httpx
from PIL import Image
import pytest

from playground.providers.errors import ProviderError
from playground.providers.exchange import ImageInput
from playground.providers.kvid import KvidAdapter, parse_estimated_time, plausible

from tests.helpers import finish_provider_jobs, start_sandbox

T2I, I2I = "text-to-image", "image-to-image"


@pytest.fixture
def kvid(sandbox):
    return KvidAdapter(base_url=sandbox.url + "/kvid", api_key="sandbox-key")


def wait_for(adapter, model, job_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    finish_provider_jobs()  # no waiting for the sandbox's latency
    while time.monotonic() < deadline:
        outcome = adapter.check(model, job_id)
        if outcome.finished:
            return outcome
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def submit_error(adapter, params, model=T2I, images=None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        adapter.submit(model, params, images=images)
    return info.value


def error_of(resp: httpx.Response) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        KvidAdapter(base_url="https://api.kvid.ai", api_key="k").envelope(resp)
    return info.value


def png_bytes(color=(20, 40, 220), size=(300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


# --- the request -----------------------------------------------------------------


def test_it_sends_width_and_height_as_image_size_and_never_the_size_mode():
    adapter = KvidAdapter(base_url="https://api.kvid.ai/", api_key="secret")
    req = adapter.build_request(T2I, {
        "prompt": "a mountain lake at sunrise", "negative_prompt": "people, text",
        "size_mode": "custom", "aspect_ratio": "16:9", "width": 768, "height": 512,
        "num_inference_steps": 40, "guidance_scale": 7.5, "seed": 42, "num_images": 3,
        "output_format": "png", "enable_safety_checker": False,
    })
    assert req.method == "POST"
    assert req.url == "https://api.kvid.ai/ai/generation/text-to-image/generate-async"
    assert req.headers["Content-Type"] == "application/json"
    assert (req.auth_header, req.auth_scheme) == ("api-key", "")
    assert req.json == {
        "prompt": "a mountain lake at sunrise", "negative_prompt": "people, text",
        "image_size": {"width": 768, "height": 512},
        "num_inference_steps": 40, "guidance_scale": 7.5, "seed": 42, "num_images": 3,
        "output_format": "png", "enable_safety_checker": False,
    }
    assert "secret" not in str(req.json) and "secret" not in str(req.headers)


def test_it_sends_only_the_aspect_ratio_in_aspect_ratio_mode():
    adapter = KvidAdapter(base_url="https://api.kvid.ai", api_key="secret")
    req = adapter.build_request(T2I, {
        "prompt": "a tabby cat on a windowsill", "size_mode": "aspect_ratio", "aspect_ratio": "9:16",
        "width": 512, "height": 512, "enable_safety_checker": True,
    })
    assert req.json == {"prompt": "a tabby cat on a windowsill", "aspect_ratio": "9:16", "enable_safety_checker": True}


def test_it_sends_the_input_image_as_a_url_for_image_to_image():
    adapter = KvidAdapter(base_url="https://api.kvid.ai", api_key="secret")
    image = ImageInput(url="https://app.example/i/signed-token", content_type="image/png", load=png_bytes)
    req = adapter.build_request(I2I, {"prompt": "make it autumn", "image": "ref-id", "size_mode": "aspect_ratio",
                                      "aspect_ratio": "1:1"}, images={"image": image})
    assert req.url == "https://api.kvid.ai/ai/generation/image-to-image/generate-async"
    assert req.json == {"prompt": "make it autumn", "image_url": "https://app.example/i/signed-token",
                        "aspect_ratio": "1:1"}


def test_it_estimates_cost_per_megapixel_and_follows_the_configured_rate(settings):
    spec = KvidAdapter.model(T2I)
    assert spec.estimate({"prompt": "x", "size_mode": "custom", "width": 1024, "height": 1024}) == Decimal("8.00")
    assert spec.estimate({"prompt": "x", "size_mode": "custom", "width": 512, "height": 512, "num_images": 4}) == Decimal("8.00")
    assert spec.estimate({"prompt": "x", "size_mode": "aspect_ratio", "aspect_ratio": "16:9"}) == Decimal("4.50")
    settings.KVID_CREDITS_PER_MEGAPIXEL = "2.5"
    assert spec.estimate({"prompt": "x", "num_images": 2}) == Decimal("5.00")


# --- a job over HTTP ---------------------------------------------------------------


def started_earlier(sandbox, job_id, fraction):
    """Move a sandbox job's start into the past by `fraction` of its latency."""
    with sqlite3.connect(sandbox.app.config.db_path) as c:
        c.execute("UPDATE tasks SET created = created - (finish_at - created) * ?, finish_at = finish_at - "
                  "(finish_at - created) * ? WHERE id=?", (fraction, fraction, job_id))


def test_it_runs_a_job_through_queued_processing_and_completed(kvid, sandbox):
    submitted = kvid.submit(T2I, {"prompt": "a windmill in a tulip field [slow]", "size_mode": "custom",
                                  "width": 512, "height": 768, "num_images": 2, "output_format": "png"})
    assert submitted.state == "pending"
    assert submitted.job_id.startswith("img_")
    assert submitted.hint.startswith("estimated ")
    assert submitted.expected_seconds == float(re.search(r"\d+", submitted.hint).group())  # what the job waits for
    assert kvid.check(T2I, submitted.job_id).state == "pending"  # queued for the first third
    # No waiting: the job's clock is moved, to half-way, then to the end.
    started_earlier(sandbox, submitted.job_id, 0.5)
    assert kvid.check(T2I, submitted.job_id).state == "generating"
    started_earlier(sandbox, submitted.job_id, 1.0)
    outcome = kvid.check(T2I, submitted.job_id)
    assert outcome.state == "succeeded"
    assert len(outcome.image_urls) == 2  # result_url repeats images[0]: kept once
    assert outcome.credits_used == Decimal("6")  # 512 x 768 x 2 at 8 per 1024 x 1024
    for url in outcome.image_urls:
        img = Image.open(io.BytesIO(httpx.get(url, timeout=10).content))
        assert (img.format, img.size) == ("PNG", (512, 768))


def test_it_gets_jpeg_in_the_aspect_ratio_it_asked_for(kvid):
    job = kvid.submit(T2I, {"prompt": "a sailboat on calm water", "size_mode": "aspect_ratio", "aspect_ratio": "16:9"})
    outcome = wait_for(kvid, T2I, job.job_id)
    assert len(outcome.image_urls) == 1
    img = Image.open(io.BytesIO(httpx.get(outcome.image_urls[0], timeout=10).content))
    assert (img.format, img.size) == ("JPEG", (1024, 576))


def test_it_reports_a_failed_job_with_the_providers_message(kvid):
    job = kvid.submit(T2I, {"prompt": "a paper lantern [fail]"})
    outcome = wait_for(kvid, T2I, job.job_id)
    assert outcome.state == "failed"
    assert outcome.error.kind == "failed"
    assert "Generation failed" in outcome.error.message


def test_it_cannot_see_another_keys_job_or_an_unknown_one(kvid, sandbox):
    job = kvid.submit(T2I, {"prompt": "a lighthouse on a cliff"})
    other = KvidAdapter(base_url=sandbox.url + "/kvid", api_key="second-key")
    for adapter, job_id in ((other, job.job_id), (kvid, "img_1_doesnotexist")):
        with pytest.raises(ProviderError) as info:
            adapter.check(T2I, job_id)
        assert info.value.kind == "not_found"


def test_it_rejects_an_image_url_the_provider_cannot_read(kvid, sandbox):
    image = ImageInput(url=sandbox.url + "/kvid/no-such-image.png", content_type="image/png", load=png_bytes)
    err = submit_error(kvid, {"prompt": "make it snow", "image": "ref"}, model=I2I, images={"image": image})
    assert (err.kind, err.field) == ("validation", "image")


# --- every documented error code, over HTTP ------------------------------------------


@pytest.mark.parametrize("prompt, kind, code, status", [
    ("   ", "validation", "INVALID_PROMPT", 400),
    ("a green apple [402]", "insufficient_credits", "INSUFFICIENT_CREDITS", 402),
    ("a green apple [blocked]", "content_blocked", "SAFETY_CHECK_FAILED", 422),
    ("a green apple [429]", "rate_limited", "RATE_LIMITED", 429),
    ("a green apple [500]", "server_error", "SERVER_ERROR", 500),
])
def test_it_maps_each_documented_error_code(kvid, prompt, kind, code, status):
    err = submit_error(kvid, {"prompt": prompt})
    assert (err.kind, err.code, err.status) == (kind, code, status)
    assert err.message and "HTTP" not in err.message  # the provider's own words


def test_it_points_an_invalid_prompt_at_the_prompt_field(kvid):
    assert submit_error(kvid, {"prompt": ""}).field == "prompt"


def test_it_takes_the_wait_from_retry_after_when_rate_limited(kvid):
    err = submit_error(kvid, {"prompt": "a green apple [429]"})
    assert err.retry_after == 1.0
    assert err.retryable


def test_it_points_a_bad_size_at_its_field(kvid):
    err = submit_error(kvid, {"prompt": "a hot air balloon", "size_mode": "custom", "width": 2048, "height": 512})
    assert (err.kind, err.field) == ("validation", "width")


def test_it_reports_a_wrong_key_as_an_auth_error(sandbox):
    adapter = KvidAdapter(base_url=sandbox.url + "/kvid", api_key="wrong-key")
    assert submit_error(adapter, {"prompt": "a green apple"}).kind == "auth"


def test_it_falls_back_to_the_http_status_when_the_body_is_not_json(kvid):
    err = submit_error(kvid, {"prompt": "a green apple [503]"})
    assert (err.kind, err.status) == ("unavailable", 503)
    assert err.retryable


def test_the_sandbox_holds_its_rate_limit_per_key(tmp_path):
    sb = start_sandbox(tmp_path, rate_limits={"kvid": [(2, 60.0)]})
    try:
        adapter = KvidAdapter(base_url=sb.url + "/kvid", api_key="sandbox-key")
        for _ in range(2):
            adapter.submit(T2I, {"prompt": "a pebble beach"})
        err = submit_error(adapter, {"prompt": "a pebble beach"})
        assert err.kind == "rate_limited" and err.retry_after and err.retry_after > 1
        KvidAdapter(base_url=sb.url + "/kvid", api_key="second-key").submit(T2I, {"prompt": "a pebble beach"})
    finally:
        sb.stop()


# --- response shapes the contract allows -----------------------------------------------


def result(data) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": {"job_id": "img_1_a", "status": "completed", **data}})


@pytest.mark.parametrize("data, urls", [
    ({"result_url": "https://cdn.kvid.ai/a.jpg"}, ["https://cdn.kvid.ai/a.jpg"]),
    ({"result_urls": ["https://cdn.kvid.ai/a.jpg", "https://cdn.kvid.ai/b.jpg"]},
     ["https://cdn.kvid.ai/a.jpg", "https://cdn.kvid.ai/b.jpg"]),
    ({"images": [{"url": "https://cdn.kvid.ai/a.jpg"}, {"url": "https://cdn.kvid.ai/b.jpg"}]},
     ["https://cdn.kvid.ai/a.jpg", "https://cdn.kvid.ai/b.jpg"]),
    ({"result_url": "https://cdn.kvid.ai/a.jpg", "result_urls": ["https://cdn.kvid.ai/a.jpg", "https://cdn.kvid.ai/b.jpg"],
      "images": [{"url": "https://cdn.kvid.ai/b.jpg"}, {"url": "https://cdn.kvid.ai/c.jpg"}]},
     ["https://cdn.kvid.ai/a.jpg", "https://cdn.kvid.ai/b.jpg", "https://cdn.kvid.ai/c.jpg"]),
])
def test_it_reads_every_result_shape_without_duplicates(data, urls):
    outcome = KvidAdapter(base_url="https://api.kvid.ai", api_key="k").parse_result(result({**data, "used_credit": 8}))
    assert outcome.state == "succeeded"
    assert outcome.image_urls == urls
    assert outcome.credits_used == Decimal("8")


def test_it_refuses_a_completed_result_without_any_url():
    with pytest.raises(ProviderError) as info:
        KvidAdapter(base_url="https://api.kvid.ai", api_key="k").parse_result(result({"used_credit": 8}))
    assert info.value.kind == "bad_response"


@pytest.mark.parametrize("body", [
    {"success": False, "error": {"code": "INSUFFICIENT_CREDITS", "message": "Out of credits"}},
    {"success": False, "code": "INSUFFICIENT_CREDITS", "message": "Out of credits"},
    {"error": "INSUFFICIENT_CREDITS", "message": "Out of credits"},
])
def test_it_reads_all_three_error_body_shapes(body):
    err = error_of(httpx.Response(402, json=body))
    assert (err.kind, err.code, err.message) == ("insufficient_credits", "INSUFFICIENT_CREDITS", "Out of credits")


def test_it_trusts_the_error_code_over_the_http_status():
    err = error_of(httpx.Response(400, json={"success": False, "error": {"code": "SAFETY_CHECK_FAILED", "message": "no"}}))
    assert err.kind == "content_blocked"
    err = error_of(httpx.Response(200, json={"success": False, "code": "INVALID_PROMPT", "message": "empty"}))
    assert (err.kind, err.field) == ("validation", "prompt")


@pytest.mark.parametrize("status, kind", [(401, "auth"), (402, "insufficient_credits"), (429, "rate_limited"),
                                          (502, "unavailable"), (500, "server_error")])
def test_it_falls_back_to_the_http_status_for_an_unknown_body(status, kind):
    err = error_of(httpx.Response(status, text="<html>error</html>", headers={"Retry-After": "7"}))
    assert err.kind == kind
    assert err.retry_after == (7.0 if kind == "rate_limited" else None)


# --- estimated_time -------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("10s", 10), ("1m", 60), ("about 10 seconds", 10), ("1m 30s", 90), ("2 minutes", 120), ("45", 45),
    ("10-20 s", 20), ("~15 sec", 15), ("00:30", 30), (12, 12), ("1.5 min", 90),
    ("soon", None), ("", None), (None, None),
])
def test_it_reads_estimated_time_leniently(text, seconds):
    assert parse_estimated_time(text) == seconds


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("0s", None), ("30 hours", None), ("soon", None)])
def test_jobs_are_polled_only_by_a_plausible_estimate(text, seconds):
    assert plausible(parse_estimated_time(text)) == seconds
