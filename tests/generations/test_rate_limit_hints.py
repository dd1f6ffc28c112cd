"""A 429's wait hint is found wherever the provider puts it."""

import httpx
import pytest

from playground.providers.errors import ProviderError
from playground.providers.kie import KieAdapter
from playground.providers.kvid import KvidAdapter


@pytest.mark.parametrize("headers,body,expected", [
    ({"Retry-After": "7"}, {"code": 429, "msg": "slow down"}, 7),
    ({"X-RateLimit-Reset": "12"}, {"code": 429, "msg": "slow down"}, 12),
    ({}, {"code": 429, "msg": "slow down", "retry_after": 30}, 30),
])
def test_kie_reads_every_documented_hint(headers, body, expected):
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    with pytest.raises(ProviderError) as e:
        adapter.raise_for_response(httpx.Response(429, headers=headers, json=body), body)
    assert e.value.kind == "rate_limited" and e.value.retry_after == pytest.approx(expected, abs=1)


@pytest.mark.parametrize("headers,body,expected", [
    ({"Retry-After": "7"}, {"error": "RATE_LIMITED", "message": "slow"}, 7),
    ({"X-RateLimit-Reset": "12"}, {"error": "RATE_LIMITED", "message": "slow"}, 12),
    ({}, {"success": False, "code": "RATE_LIMITED", "message": "slow", "retry_after": 30}, 30),
])
def test_kvid_reads_every_documented_hint(headers, body, expected):
    adapter = KvidAdapter(base_url="https://api.kvid.ai", api_key="k")
    with pytest.raises(ProviderError) as e:
        adapter.raise_for_response(httpx.Response(429, headers=headers, json=body), body)
    err = e.value
    assert err.kind == "rate_limited" and err.retry_after == pytest.approx(expected, abs=1)


def test_kvid_treats_a_result_that_is_not_ready_yet_as_still_generating():
    def handler(request):
        if "status" in request.url.path:
            return httpx.Response(200, json={"success": True, "data": {"job_id": "j1", "status": "completed"}})
        return httpx.Response(409, json={"success": False, "error": {"code": "JOB_NOT_COMPLETED", "message": "wait"}})

    adapter = KvidAdapter(base_url="https://api.kvid.ai", api_key="k", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert adapter.check("text-to-image", "j1").state == "generating"


def test_kie_accepts_the_code_as_a_string():
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    resp = httpx.Response(200, json={"code": "200", "msg": "success", "data": {"taskId": "t1"}})
    assert adapter.envelope(resp) == {"taskId": "t1"}
