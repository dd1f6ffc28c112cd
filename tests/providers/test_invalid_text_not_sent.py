"""Text that is not valid Unicode never goes out, and what fails before a
byte is sent is never "may have been sent" (RELIABILITY 11): every adapter,
over real HTTP against a sandbox that counts what it receives."""

from __future__ import annotations

import httpx
import pytest

from playground.providers.errors import ProviderError
from playground.providers.exchange import PreparedRequest
from playground.providers.kawai import KawaiAdapter
from playground.providers.kie import KieAdapter
from playground.providers.kvid import KvidAdapter
from playground.providers.kwiki import KwikiAdapter

from tests.bad_text import NUL_TEXT, SURROGATE
from tests.helpers import Counting, start_sandbox

MODELS = [(KieAdapter, "seedream-v4"), (KvidAdapter, "text-to-image"), (KawaiAdapter, "generations"),
          (KwikiAdapter, "generate")]


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    sb = start_sandbox(tmp_path_factory.mktemp("sandbox"), latency=0.0)
    yield sb, Counting(sb)
    sb.stop()


def adapter(counted, cls, api_key="sandbox-key"):
    sb, _ = counted
    return cls(base_url=sb.url + cls.sandbox_prefix, api_key=api_key, client=httpx.Client(timeout=10))


def refused(call) -> ProviderError:
    with pytest.raises(ProviderError) as e:
        call()
    assert e.value.maybe_sent is False and not e.value.retryable
    return e.value


@pytest.mark.parametrize("cls, model", MODELS, ids=lambda v: getattr(v, "key", v))
@pytest.mark.parametrize("prompt", [SURROGATE, NUL_TEXT], ids=["surrogate", "nul"])
def test_a_bad_prompt_reaching_submit_is_a_validation_error_and_sends_nothing(counted, cls, model, prompt):
    _, counting = counted
    before = len(counting.paths)
    a = adapter(counted, cls)
    err = refused(lambda: a.submit(model, {"prompt": prompt}))
    assert (err.kind, err.field) == ("validation", "prompt")
    assert err.message.startswith("Prompt ") and "character 2" in err.message
    assert len(counting.paths) == before and a.requests_started == 0


def test_the_one_http_path_refuses_a_json_body_it_cannot_encode_before_sending(counted):
    _, counting = counted
    before = len(counting.paths)
    a = adapter(counted, KieAdapter)
    url = a.base_url + "/api/v1/jobs/createTask"
    err = refused(lambda: a._request(PreparedRequest("POST", url, json={"input": {"prompt": SURROGATE}})))
    assert err.kind == "validation"
    assert err.message == ("The request to KIE.ai could not be made: `input.prompt` is not valid Unicode: it has a "
                           "lone surrogate (U+D800) at character 2. Nothing was sent.")
    # A value JSON cannot carry: not sent either.
    err = refused(lambda: a._request(PreparedRequest("POST", url, json={"input": {"guidance": float("nan")}})))
    assert err.kind == "not_sent" and "Nothing was sent." in err.message
    assert len(counting.paths) == before and a.requests_started == 0


def test_a_multipart_file_name_it_cannot_encode_is_refused_before_sending(counted):
    _, counting = counted
    before = len(counting.paths)
    a = adapter(counted, KawaiAdapter)
    req = PreparedRequest("POST", a.base_url + "/v1/images/edits", data={"prompt": "a paper boat"},
                          files=[("image", ("in\ud800.png", b"png", "image/png"))])
    err = refused(lambda: a._request(req))
    assert err.kind == "validation" and "a file's name is not valid Unicode" in err.message
    assert len(counting.paths) == before


def test_a_key_that_cannot_go_in_a_header_is_a_config_error_never_sent(counted):
    _, counting = counted
    before = len(counting.paths)
    a = adapter(counted, KwikiAdapter, api_key="sandbox-k\u00e9y\u4e00")
    err = refused(lambda: a.submit("generate", {"prompt": "a paper boat", "quality": "fast", "style": "realistic"}))
    assert err.kind == "config" and "Nothing was sent." in err.message
    assert "k\u00e9y" not in err.message
    assert len(counting.paths) == before


def test_a_good_request_is_counted_as_started(counted):
    _, counting = counted
    before = len(counting.paths)
    a = adapter(counted, KwikiAdapter)
    outcome = a.submit("generate", {"prompt": "a paper boat", "quality": "fast", "style": "realistic"})
    assert outcome.state == "succeeded"
    assert a.requests_started == 1 and len(counting.paths) == before + 1
