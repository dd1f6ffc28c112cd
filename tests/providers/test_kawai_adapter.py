"""Kawai adapter (OpenAI Images compatible) over real HTTP against its sandbox:
requests field by field, JSON and multipart, response parsing, error mapping."""

from __future__ import annotations

import base64
from decimal import Decimal
import io

import httpx
import pytest
from PIL import Image


from playground.generations.forms import form_for
from playground.providers.errors import ProviderError
from playground.providers.exchange import ImageInput
from playground.providers.kawai import KawaiAdapter

from tests.helpers import start_sandbox


class MultipartKawai(KawaiAdapter):
    """The same adapter configured like OpenAI: multipart edits/variations."""

    key = "multipart-kawai"
    multipart_images = True


def png(width=64, height=64, color=(30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def half_mask(width=64, height=64) -> bytes:
    """Black (keep) on the left half, white (edit) on the right half."""
    img = Image.new("L", (width, height), 0)
    img.paste(255, (width // 2, 0, width, height))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def image_input(data: bytes, name="input.png") -> ImageInput:
    return ImageInput(url="https://example.com/unused.png", content_type="image/png", load=lambda: data, name=name)


def adapter(sb, cls=KawaiAdapter, key="sandbox-key"):
    return cls(base_url=sb.url + cls.sandbox_prefix, api_key=key)


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# --- requests ------------------------------------------------------------------


def test_it_builds_a_generation_request_field_by_field(sandbox):
    a = adapter(sandbox)
    params = {"prompt": "a lighthouse on a cliff", "model": "kawai-test", "n": 2, "size": "512x512",
              "quality": "hd", "response_format": "b64_json"}
    req = a.build_request("generations", params)
    assert req.method == "POST"
    assert req.url == sandbox.url + "/kawai/v1/images/generations"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == params
    assert req.data is None and req.files is None

    outcome = a.submit("generations", params)
    assert outcome.state == "succeeded"
    assert len(outcome.image_bytes) == 2
    assert all(decode(b).size == (512, 512) for b in outcome.image_bytes)


def test_it_leaves_out_unset_fields(sandbox):
    req = adapter(sandbox).build_request("generations", {"prompt": "a pine forest", "n": 1})
    assert req.json == {"prompt": "a pine forest", "n": 1}


def test_it_sends_edit_images_as_data_urls_in_json(sandbox):
    a = adapter(sandbox)
    source, mask = png(), half_mask()
    params = {"prompt": "add a small boat", "image": "img-id", "mask": "mask-id", "n": 1, "size": "64x64",
              "response_format": "b64_json"}
    images = {"image": image_input(source), "mask": image_input(mask)}
    req = a.build_request("edits", params, images=images)
    assert req.url.endswith("/images/edits")
    assert req.json["image"] == "data:image/png;base64," + base64.b64encode(source).decode()
    assert req.json["mask"] == "data:image/png;base64," + base64.b64encode(mask).decode()
    assert set(req.json) == {"prompt", "image", "mask", "n", "size", "response_format"}

    [result] = a.submit("edits", params, images=images).image_bytes
    img = decode(result).convert("RGB")
    assert img.size == (64, 64)
    # Black in the mask keeps the input: the left half is still the input colour.
    assert img.getpixel((2, 32)) == (30, 120, 200)
    assert img.getpixel((10, 60)) == (30, 120, 200)


def test_it_sends_a_variation_without_a_prompt(sandbox):
    a = adapter(sandbox)
    params = {"image": "img-id", "n": 3, "size": "128x96"}
    images = {"image": image_input(png())}
    req = a.build_request("variations", params, images=images)
    assert req.url.endswith("/images/variations")
    assert set(req.json) == {"image", "n", "size"}

    outcome = a.submit("variations", params, images=images)
    assert len(outcome.image_urls) == 3
    assert decode(httpx.get(outcome.image_urls[2]).content).size == (128, 96)


def test_it_refuses_a_missing_required_image_before_sending(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).build_request("variations", {"image": "img-id"}, images={})
    assert (e.value.kind, e.value.field) == ("validation", "image")


def test_it_builds_multipart_edits_with_raw_image_bytes(sandbox):
    a = adapter(sandbox, MultipartKawai)
    source, mask = png(), half_mask()
    params = {"prompt": "add a small boat", "image": "img-id", "mask": "mask-id", "n": 2, "size": "64x64",
              "response_format": "b64_json"}
    req = a.build_request("edits", params, images={"image": image_input(source, "photo.png"),
                                                    "mask": image_input(mask, "mask.png")})
    assert req.json is None
    assert req.data == {"prompt": "add a small boat", "n": "2", "size": "64x64", "response_format": "b64_json"}
    assert req.files == [("image", ("photo.png", source, "image/png")), ("mask", ("mask.png", mask, "image/png"))]
    assert "Content-Type" not in req.headers  # httpx sets the multipart boundary


def test_the_sandbox_accepts_multipart_edits_and_variations(sandbox):
    a = adapter(sandbox, MultipartKawai)
    images = {"image": image_input(png()), "mask": image_input(half_mask())}
    edited = a.submit("edits", {"prompt": "add a small boat", "image": "i", "mask": "m", "n": 2,
                                "response_format": "b64_json"}, images=images)
    assert len(edited.image_bytes) == 2
    assert decode(edited.image_bytes[0]).convert("RGB").getpixel((2, 32)) == (30, 120, 200)

    varied = a.submit("variations", {"image": "i", "size": "96x64"}, images={"image": image_input(png())})
    assert decode(httpx.get(varied.image_urls[0]).content).size == (96, 64)


def test_multipart_mode_still_sends_generations_as_json(sandbox):
    req = adapter(sandbox, MultipartKawai).build_request("generations", {"prompt": "a meadow", "n": 1})
    assert req.json == {"prompt": "a meadow", "n": 1}
    assert req.files is None


def test_the_sandbox_rejects_an_image_that_does_not_decode(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).submit("variations", {"image": "i"}, images={"image": image_input(b"not an image")})
    assert (e.value.kind, e.value.field, e.value.status) == ("validation", "image", 400)


def test_the_sandbox_rejects_a_mask_of_another_size(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).submit("edits", {"prompt": "a boat", "image": "i", "mask": "m"},
                                images={"image": image_input(png(64, 64)), "mask": image_input(half_mask(32, 32))})
    assert (e.value.kind, e.value.field) == ("validation", "mask")


# --- responses -------------------------------------------------------------------


def test_it_returns_url_results_that_download_as_images(sandbox):
    outcome = adapter(sandbox).submit("generations", {"prompt": "a red fox in snow", "n": 2, "size": "256x256"})
    assert outcome.state == "succeeded" and outcome.job_id is None
    assert len(outcome.image_urls) == 2 and outcome.image_bytes == []
    resp = httpx.get(outcome.image_urls[1])
    assert resp.status_code == 200 and decode(resp.content).size == (256, 256)
    assert outcome.raw["revised_prompts"] == ["a red fox in snow", "a red fox in snow"]


def test_it_parses_mixed_url_and_base64_items_with_revised_prompts():
    a = KawaiAdapter(base_url="https://api.getkawai.com/v1", api_key="k")
    blob = png(8, 8)
    resp = httpx.Response(200, json={"created": 1760000000, "data": [
        {"url": "https://cdn.example.com/a.png", "revised_prompt": "a calm lake at dawn, misty"},
        {"b64_json": base64.b64encode(blob).decode()},
        {"b64_json": base64.b64encode(blob).decode(), "revised_prompt": "a calm lake, second take"},
    ]})
    outcome = a.parse_response(resp)
    assert outcome.image_urls == ["https://cdn.example.com/a.png"]
    assert outcome.image_bytes == [blob, blob]
    assert outcome.raw == {"created": 1760000000, "images": 3,
                           "revised_prompts": ["a calm lake at dawn, misty", "a calm lake, second take"]}
    assert outcome.credits_used is None  # no cost in the response: the job keeps the estimate


@pytest.mark.parametrize("body", [
    {"created": 1, "data": []},
    {"created": 1, "data": [{"b64_json": "not base64!"}]},
    {"created": 1},
    ["not", "an", "object"],
])
def test_it_reports_an_unreadable_success_as_bad_response(body):
    a = KawaiAdapter(base_url="https://api.getkawai.com/v1", api_key="k")
    with pytest.raises(ProviderError) as e:
        a.parse_response(httpx.Response(200, json=body))
    assert e.value.kind == "bad_response"


# --- errors --------------------------------------------------------------------


def test_a_bad_token_is_an_auth_error(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox, key="wrong-key").submit("generations", {"prompt": "a meadow"})
    assert (e.value.kind, e.value.status, e.value.code) == ("auth", 401, "invalid_api_key")
    assert "wrong-key" not in str(e.value)


def test_a_token_granted_for_generations_only_is_refused_on_edits_and_variations(sandbox):
    a = adapter(sandbox, key="sandbox-generations-only")
    assert a.submit("generations", {"prompt": "a meadow", "size": "64x64"}).state == "succeeded"
    images = {"image": image_input(png())}
    for model, params, scope in (
        ("edits", {"prompt": "add a tree", "image": "i"}, "images-edits"),
        ("variations", {"image": "i"}, "images-variations"),
    ):
        with pytest.raises(ProviderError) as e:
            a.submit(model, params, images=images)
        assert (e.value.kind, e.value.status) == ("auth", 403)
        assert f"no access to this endpoint ({scope})" in e.value.message


def test_a_rejected_field_is_a_validation_error_on_that_field(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).submit("generations", {"prompt": "a meadow", "size": "99999x64"})
    assert (e.value.kind, e.value.status, e.value.field) == ("validation", 400, "size")
    assert "between 64 and 4096" in e.value.message


def test_it_checks_size_and_count_before_sending():
    a = KawaiAdapter(base_url="http://127.0.0.1:9/v1", api_key="k")  # nothing listens: must not be called
    for params, field in (({"prompt": "a", "size": "large"}, "size"), ({"prompt": "a", "n": 11}, "n")):
        with pytest.raises(ProviderError) as e:
            a.submit("generations", params)
        assert (e.value.kind, e.value.field) == ("validation", field)


def test_a_blocked_prompt_is_content_blocked(sandbox):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).submit("generations", {"prompt": "a meadow [blocked]"})
    assert (e.value.kind, e.value.code) == ("content_blocked", "content_policy_violation")
    assert not e.value.retryable


@pytest.mark.parametrize("mark, kind, status", [
    ("[500]", "server_error", 500),
    ("[503]", "unavailable", 503),
    ("[429]", "rate_limited", 429),
])
def test_server_and_rate_errors_are_retryable(sandbox, mark, kind, status):
    with pytest.raises(ProviderError) as e:
        adapter(sandbox).submit("generations", {"prompt": f"a meadow {mark}"})
    assert (e.value.kind, e.value.status) == (kind, status)
    assert e.value.retryable
    if status == 429:
        assert e.value.retry_after == 1.0


def test_it_honours_retry_after_from_the_sandbox_rate_limit(tmp_path):
    sb = start_sandbox(tmp_path, rate_limits={"kawai": [(1, 30.0)]})
    try:
        a = adapter(sb)
        assert a.submit("generations", {"prompt": "a meadow", "size": "64x64"}).state == "succeeded"
        with pytest.raises(ProviderError) as e:
            a.submit("generations", {"prompt": "a meadow", "size": "64x64"})
        assert e.value.kind == "rate_limited"
        assert 25 <= e.value.retry_after <= 30
    finally:
        sb.stop()


@pytest.mark.parametrize("status, body, headers, kind, extra", [
    (429, {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                     "code": "insufficient_quota"}}, {}, "insufficient_credits", {}),
    (429, {"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}},
     {"Retry-After": "7"}, "rate_limited", {"retry_after": 7.0}),
    (429, {"error": {"message": "Slow down"}}, {}, "rate_limited", {"retry_after": 10.0}),
    (400, {"error": {"message": "Invalid quality", "type": "invalid_request_error", "param": "quality",
                     "code": None}}, {}, "validation", {"field": "quality"}),
    (400, {"error": {"message": "Bad thing", "param": "not_ours"}}, {}, "validation", {"field": None}),
    (400, {"error": "plain text error"}, {}, "validation", {"message": "plain text error"}),
    (502, {"detail": "bad gateway"}, {}, "unavailable", {}),
    (404, {"error": {"message": "Unknown request URL"}}, {}, "not_found", {}),
])
def test_it_maps_openai_shaped_errors(status, body, headers, kind, extra):
    a = KawaiAdapter(base_url="https://api.getkawai.com/v1", api_key="k")
    with pytest.raises(ProviderError) as e:
        a.parse_response(httpx.Response(status, json=body, headers=headers), "generations")
    assert e.value.kind == kind
    for attr, value in extra.items():
        assert getattr(e.value, attr) == value


def test_a_non_json_error_page_still_maps_by_status():
    a = KawaiAdapter(base_url="https://api.getkawai.com/v1", api_key="k")
    with pytest.raises(ProviderError) as e:
        a.parse_response(httpx.Response(500, text="<html>oops</html>"))
    assert (e.value.kind, e.value.message) == ("server_error", "HTTP 500")


# --- cost and form ----------------------------------------------------------------


def test_the_estimate_comes_from_the_price_table_and_can_be_overridden(settings):
    spec = KawaiAdapter.model("generations")
    assert spec.estimate({"prompt": "a", "n": 2, "size": "1024x1024", "quality": "hd"}) == Decimal("0.16")
    assert spec.estimate({"prompt": "a", "size": "256x256"}) == Decimal("0.016")
    assert spec.estimate({"prompt": "a", "size": "1536x1024"}) == Decimal("0.08")
    settings.KAWAI_PRICES = {"kawai-pro": {"*": "0.5"}, "*": {"*": {"standard": "0.01", "hd": "0.03"}}}
    assert spec.estimate({"prompt": "a", "n": 3, "model": "kawai-pro"}) == Decimal("1.5")
    assert spec.estimate({"prompt": "a", "quality": "hd"}) == Decimal("0.03")
    assert KawaiAdapter.model("variations").estimate({"image": "i", "n": 2}) == Decimal("0.02")


def test_the_form_offers_sizes_as_suggestions_and_accepts_any_width_x_height():
    Form = form_for(KawaiAdapter.model("generations"))
    html = str(Form()["size"])
    assert 'list="id_size-suggestions"' in html and '<option value="1536x1024">' in html
    ok = Form({"prompt": "a meadow", "n": "1", "size": "640x480"})
    assert ok.is_valid(), ok.errors
    assert ok.params()["size"] == "640x480"
    bad = Form({"prompt": "a meadow", "n": "1", "size": "big"})
    assert not bad.is_valid() and "size" in bad.errors
    too_many = Form({"prompt": "a meadow", "n": "11", "size": "64x64"})
    assert not too_many.is_valid() and "n" in too_many.errors
