"""Kwiki AI adapter against its sandbox over real HTTP (shared/providers/kwiki.md)."""

from decimal import Decimal
import io
import time

import httpx
from PIL import Image
import pytest

from playground.providers.errors import ProviderError
from playground.providers.kwiki import KwikiAdapter


@pytest.fixture
def kwiki(sandbox):
    return KwikiAdapter(base_url=sandbox.url + "/kwiki", api_key="sandbox-key")


def raw_post(sandbox, body, key="sandbox-key"):
    """A request the adapter would never send (it validates first)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(sandbox.url + "/kwiki/api/v1/generate", headers=headers, timeout=10, **payload)


def error_of(adapter, resp) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        adapter.parse_generate(resp)
    return info.value


def tripwire_adapter():
    """An adapter whose every request is recorded instead of sent."""
    sent = []

    def handler(request):
        sent.append(request)
        return httpx.Response(500)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return KwikiAdapter(base_url="https://kwikiai.com", api_key="k", client=client), sent


# --- the request -----------------------------------------------------------------


def test_it_builds_the_documented_request_for_the_adult_style():
    adapter = KwikiAdapter(base_url="https://kwikiai.com/", api_key="secret")
    req = adapter.build_request("generate", {
        "prompt": "portrait photo in a park", "quality": "hires", "style": "nude",
        "gender": "male", "age": 35, "hair_color": "silver", "eye_color": "green",
        "snap_caption": True, "snap_caption_text": "sunny day", "snap_caption_position": "center",
    })
    assert req.method == "POST"
    assert req.url == "https://kwikiai.com/api/v1/generate"
    assert req.headers["Content-Type"] == "application/json"
    assert (req.auth_header, req.auth_scheme) == ("Authorization", "Bearer ")
    assert req.json == {
        "prompt": "portrait photo in a park",
        "quality": "hires",
        "style": "nude",
        "appearance": {"gender": "male", "age": 35, "hair_color": "silver", "eye_color": "green"},
        "snap_caption": {"text": "sunny day", "position": "center"},
    }
    assert "secret" not in str(req)


def test_it_sends_a_random_caption_as_true():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    req = adapter.build_request("generate", {"prompt": "portrait photo in a park", "style": "nude", "snap_caption": True})
    assert req.json == {"prompt": "portrait photo in a park", "style": "nude", "snap_caption": True}


def test_it_sends_no_appearance_or_caption_with_other_styles():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    req = adapter.build_request("generate", {
        "prompt": "a watercolor fox", "quality": "fast", "style": "anime", "age": 30, "gender": "female",
        "snap_caption": True, "snap_caption_text": "hello",
    })
    assert req.json == {"prompt": "a watercolor fox", "quality": "fast", "style": "anime"}


def test_it_estimates_one_credit_for_fast_and_two_for_hires():
    spec = KwikiAdapter.model("generate")
    assert spec.estimate({"prompt": "a boat"}) == Decimal(1)
    assert spec.estimate({"prompt": "a boat", "quality": "hires"}) == Decimal(2)


@pytest.mark.parametrize("params, field", [
    ({"age": 17}, "age"),
    ({"age": 71}, "age"),
    ({"age": "30"}, "age"),
    ({"age": 30.5}, "age"),
    ({"age": True}, "age"),
    ({"gender": "other"}, "gender"),
    ({"quality": "ultra"}, "quality"),
    ({"prompt": "a hill " * 200}, "prompt"),
    ({"prompt": ""}, "prompt"),
])
def test_it_refuses_invalid_values_without_sending_anything(params, field):
    adapter, sent = tripwire_adapter()
    with pytest.raises(ProviderError) as info:
        adapter.submit("generate", {"prompt": "portrait photo in a park", "style": "nude", **params})
    assert (info.value.kind, info.value.field) == ("validation", field)
    assert sent == []


# --- over HTTP --------------------------------------------------------------------


def test_it_generates_an_image_synchronously(kwiki):
    outcome = kwiki.submit("generate", {"prompt": "a lighthouse at dusk", "quality": "hires"})
    assert outcome.state == "succeeded" and outcome.finished
    assert outcome.job_id.startswith("gen_")
    assert outcome.credits_used == Decimal(2)
    [url] = outcome.image_urls
    img = Image.open(io.BytesIO(httpx.get(url).content))
    assert img.size == (1536, 1536)


def test_the_sandbox_accepts_every_field_the_adapter_sends(kwiki):
    outcome = kwiki.submit("generate", {
        "prompt": "portrait photo in a park", "style": "nude", "gender": "trans", "age": 18,
        "ethnicity": "any", "hair_style": "bun", "hair_color": "pink", "eye_color": "grey",
        "body_type": "athletic", "breast_size": "small", "snap_caption_text": "hello",
    })
    assert outcome.state == "succeeded"
    assert outcome.credits_used == Decimal(1)


def test_every_sandbox_response_carries_rate_limit_headers(tmp_path):
    from tests.helpers import start_sandbox

    sb = start_sandbox(tmp_path, rate_limits={})  # Kwiki's documented 10/minute and 100/hour
    try:
        for resp in (raw_post(sb, {"prompt": "a pond"}), raw_post(sb, {"prompt": "a pond"}, key=None),
                     raw_post(sb, b"not json")):
            assert resp.headers["X-RateLimit-Remaining"].isdigit()
            assert int(resp.headers["X-RateLimit-Reset"]) > time.time() + 30  # when the minute frees up
    finally:
        sb.stop()


def test_it_maps_a_wrong_key_to_auth(sandbox):
    adapter = KwikiAdapter(base_url=sandbox.url + "/kwiki", api_key="wrong-key")
    with pytest.raises(ProviderError) as info:
        adapter.submit("generate", {"prompt": "a meadow"})
    assert (info.value.kind, info.value.code, info.value.status) == ("auth", "invalid_api_key", 401)


def test_it_maps_a_missing_key_to_auth(kwiki, sandbox):
    err = error_of(kwiki, raw_post(sandbox, {"prompt": "a meadow"}, key=None))
    assert (err.kind, err.code, err.status) == ("auth", "missing_api_key", 401)


@pytest.mark.parametrize("marker, kind, code, status", [
    ("[403]", "content_blocked", "content_blocked", 403),
    ("[blocked]", "content_blocked", "content_blocked", 403),
    ("[500]", "server_error", "internal_error", 500),
    ("[503]", "unavailable", "generation_failed", 503),
    ("[429]", "rate_limited", "rate_limited", 429),
])
def test_it_maps_each_error_code(kwiki, marker, kind, code, status):
    with pytest.raises(ProviderError) as info:
        kwiki.submit("generate", {"prompt": f"a mountain lake {marker}"})
    err = info.value
    assert (err.kind, err.code, err.status) == (kind, code, status)
    assert not err.maybe_sent


def test_a_failed_generation_is_not_charged_so_it_may_be_retried(kwiki):
    with pytest.raises(ProviderError) as info:
        kwiki.submit("generate", {"prompt": "a mountain lake [503]"})
    assert info.value.retryable
    assert "try again" in info.value.message


def test_it_reports_the_credits_needed_and_available(kwiki):
    with pytest.raises(ProviderError) as info:
        kwiki.submit("generate", {"prompt": "a mountain lake [402]", "quality": "hires"})
    err = info.value
    assert err.kind == "insufficient_credits" and err.status == 402
    assert (err.details["credits_required"], err.details["credits_available"]) == (2, 0)
    assert "needs 2 credits, 0 available" in err.message


def test_it_takes_the_retry_delay_from_the_429_body(kwiki):
    with pytest.raises(ProviderError) as info:
        kwiki.submit("generate", {"prompt": "a mountain lake [429]"})
    assert info.value.retry_after == 1.0
    assert info.value.retryable


def test_it_maps_a_body_that_is_not_a_json_object_to_validation(kwiki, sandbox):
    for body in (b"{not json", b"[1, 2]"):
        err = error_of(kwiki, raw_post(sandbox, body))
        assert (err.kind, err.code, err.status) == ("validation", "invalid_request", 400)


@pytest.mark.parametrize("body, field", [
    ({"prompt": "a hill " * 200}, "prompt"),
    ({"prompt": "a hill", "quality": "ultra"}, "quality"),
    ({"prompt": "a hill", "style": "oil"}, "style"),
    ({"prompt": "a hill", "style": "nude", "appearance": {"age": 17}}, "age"),
    ({"prompt": "a hill", "style": "nude", "appearance": {"age": "30"}}, "age"),
    ({"prompt": "a hill", "style": "nude", "appearance": {"gender": "robot"}}, "gender"),
    ({"prompt": "a hill", "style": "realistic", "appearance": {"age": 30}}, "appearance"),
    ({"prompt": "a hill", "snap_caption": True}, "snap_caption"),
])
def test_it_maps_validation_errors_to_our_field(kwiki, sandbox, body, field):
    err = error_of(kwiki, raw_post(sandbox, body))
    assert (err.kind, err.code, err.status, err.field) == ("validation", "validation_error", 400, field)


def test_a_read_timeout_may_have_been_charged(sandbox):
    client = httpx.Client(timeout=httpx.Timeout(5.0, read=0.3))
    adapter = KwikiAdapter(base_url=sandbox.url + "/kwiki", api_key="sandbox-key", client=client)
    with pytest.raises(ProviderError) as info:
        adapter.submit("generate", {"prompt": "a slow sunrise [slow]"})
    assert info.value.kind == "timeout"
    assert info.value.maybe_sent and not info.value.retryable


def test_it_has_no_status_endpoint(kwiki):
    with pytest.raises(ProviderError) as info:
        kwiki.check("generate", "gen_abc12345")
    assert info.value.kind == "not_found"
    assert "synchronous" in info.value.message


# --- parsing shapes the sandbox does not produce ------------------------------------


def _rate_limited(headers, body=None):
    return httpx.Response(429, json=body or {"error": "rate_limited", "message": "Slow down."}, headers=headers)


def test_it_reads_the_reset_header_as_seconds_from_now():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    err = error_of(adapter, _rate_limited({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "0"}))
    assert err.retry_after == 42.0
    assert err.details["rate_limit_remaining"] == "0"


def test_it_reads_the_reset_header_as_an_epoch():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    err = error_of(adapter, _rate_limited({"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    assert 25 <= err.retry_after <= 31


def test_the_body_retry_after_wins_over_the_reset_header():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    resp = _rate_limited({"X-RateLimit-Reset": "600"}, {"error": "rate_limited", "message": "x", "retry_after": 7})
    assert error_of(adapter, resp).retry_after == 7.0


def test_a_success_without_an_image_url_is_a_bad_response():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    resp = httpx.Response(200, json={"id": "gen_1", "status": "completed", "credits_used": 1})
    assert error_of(adapter, resp).kind == "bad_response"


def test_an_unknown_error_code_falls_back_to_the_http_status():
    adapter = KwikiAdapter(base_url="https://kwikiai.com", api_key="k")
    err = error_of(adapter, httpx.Response(502, text="Bad gateway"))
    assert (err.kind, err.status) == ("unavailable", 502)
