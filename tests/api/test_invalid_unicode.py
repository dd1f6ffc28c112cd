"""Text that is not valid Unicode in a /v1 request (RELIABILITY 11): a 400
in OpenAI's error shape naming the parameter, before anything is made; the
next request on the same connection is served normally. A lone surrogate
comes as JSON's "\\ud800" escape (json.loads takes it), as the raw bytes
ED A0 80 in a JSON body, or in a multipart form that names its own charset."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from playground.api import views
from playground.api.errors import ApiError
from playground.generations.models import Generation, InputImage
from tests.bad_text import multipart

PROMPT = "a red kite over a green hill"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def test_a_lone_surrogate_in_the_prompt_is_a_400_naming_prompt_and_makes_no_job(app, secret):
    """Issue 23, failure 4: the job failed as "may have reached the provider"
    (nothing was sent) and the API answered 500."""
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    with httpx.Client(base_url=app, headers=headers, timeout=60) as c:
        r = c.post("/v1/images/generations", content=b'{"model": "kwiki/generate", "prompt": "a\\ud800b"}')
        assert r.status_code == 400, r.text
        assert r.json() == {"error": {
            "message": "Invalid value for `prompt`: the text is not valid Unicode: it has a lone surrogate (U+D800) "
                       "at character 2.",
            "type": "invalid_request_error", "param": "prompt", "code": "invalid_value"}}
        assert Generation.objects.count() == 0
        # The same connection serves the next request.
        ok = c.post("/v1/images/generations", json={"model": "kwiki/generate", "prompt": PROMPT})
        assert ok.status_code == 200, ok.text
        assert Generation.objects.get().status == Generation.SUCCEEDED


@pytest.fixture
def api(client, secret, settings, sandbox):
    """POST to a /v1 endpoint through Django's test client with alice's token.
    A request that is not refused would wait for its job only briefly."""
    settings.API_WAIT_SECONDS = 0.5

    def post(endpoint, body: bytes, content_type: str):
        # generic(): the body as it is (post() would encode it again in its charset).
        r = client.generic("POST", f"/v1/images/{endpoint}", body, content_type=content_type,
                           HTTP_AUTHORIZATION=f"Bearer {secret}")
        return r.status_code, r.json()

    return post


SURROGATE_AT_2 = "is not valid Unicode: it has a lone surrogate (U+D800) at character 2."


@pytest.mark.parametrize("body, param, message", [
    (b'{"model": "kwiki/generate", "prompt": "a\\ud800b"}', "prompt",
     f"Invalid value for `prompt`: the text {SURROGATE_AT_2}"),
    # Raw bytes of an encoded surrogate: json.loads decodes them ("surrogatepass").
    (b'{"model": "kwiki/generate", "prompt": "a\xed\xa0\x80b"}', "prompt",
     f"Invalid value for `prompt`: the text {SURROGATE_AT_2}"),
    (b'{"model": "kwiki/generate", "prompt": "a\\u0000b"}', "prompt",
     "Invalid value for `prompt`: the text has a NUL character (U+0000) at character 2, which is not allowed."),
    (b'{"model": "kwiki/generate", "prompt": "' + PROMPT.encode() + b'", "user": "a\\udc00b"}', "user",
     "Invalid value for `user`: the text is not valid Unicode: it has a lone surrogate (U+DC00) at character 2."),
    (b'{"model": "kwiki/gen\\ud800", "prompt": "' + PROMPT.encode() + b'"}', "model",
     "Invalid value for `model`: the text is not valid Unicode: it has a lone surrogate (U+D800) at character 10."),
    (b'{"model": "kvid/text-to-image", "prompt": "' + PROMPT.encode()
     + b'", "provider_params": {"negative_prompt": "a\\ud800b"}}', "provider_params.negative_prompt",
     f"Invalid value for `provider_params.negative_prompt`: the text {SURROGATE_AT_2}"),
    (b'{"model": "kwiki/generate", "prompt": "' + PROMPT.encode() + b'", "a\\ud800b": 1}', "a\\ud800b",
     f"The parameter name `a\\ud800b` {SURROGATE_AT_2}"),
], ids=["escape", "raw-bytes", "nul", "user", "model", "nested", "key"])
def test_json_text_that_is_not_valid_unicode_is_a_400_naming_the_parameter(api, body, param, message):
    status, error = api("generations", body, "application/json")
    assert (status, error) == (400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                               "code": "invalid_value"}})
    assert Generation.objects.count() == 0


def test_a_multipart_edit_in_a_charset_that_carries_a_surrogate_is_a_400_and_stores_no_input(api):
    body, ctype = multipart({"model": "kawai/edits", "prompt": "a\ud800b"},
                            {"image": ("in.png", png(), "image/png")})
    status, error = api("edits", body, ctype)
    assert status == 400 and error["error"]["param"] == "prompt", error
    assert error["error"]["message"] == f"Invalid value for `prompt`: the text {SURROGATE_AT_2}"
    assert Generation.objects.count() == 0 and InputImage.objects.count() == 0


def test_a_nul_in_a_multipart_field_is_a_400(api):
    body, ctype = multipart({"model": "kawai/edits", "prompt": "a\x00b"}, {"image": ("in.png", png(), "image/png")},
                            charset="utf-8")
    status, error = api("edits", body, ctype)
    assert status == 400 and error["error"]["param"] == "prompt", error
    assert Generation.objects.count() == 0 and InputImage.objects.count() == 0


def test_provider_params_as_a_json_string_in_a_form_are_checked_too(api):
    # The form field is plain UTF-8; its JSON spells out the surrogate.
    body, ctype = multipart({"model": "kvid/text-to-image", "prompt": PROMPT,
                             "provider_params": json.dumps({"negative_prompt": "a\ud800b"})}, charset="utf-8")
    status, error = api("generations", body, ctype)
    assert status == 400, error
    assert error["error"]["param"] == "provider_params.negative_prompt"
    assert error["error"]["message"] == f"Invalid value for `provider_params.negative_prompt`: the text {SURROGATE_AT_2}"
    assert Generation.objects.count() == 0


def test_an_uploads_file_name_is_checked():
    # Django's multipart parser leaves a surrogate out of a file name; any other
    # way an upload comes in, its name is held to the same rule.
    upload = SimpleUploadedFile("in\ud800.png", png(), content_type="image/png")
    with pytest.raises(ApiError) as e:
        views._check_text({"model": "kawai/edits", "prompt": PROMPT}, {"image": [upload], "mask": []})
    assert (e.value.status, e.value.param, e.value.code) == (400, "image", "invalid_value")
    assert e.value.message == ("Invalid file name for `image`: 'in\\\\ud800.png' is not valid Unicode: it has a lone "
                               "surrogate (U+D800) at character 3.")
