"""One HTTP path for every adapter (issue 7): the base adapter sends, maps
errors and reads rate-limit hints; each provider only reads its own error
body (raise_for_response); parameters are checked by their declarations
(ModelSpec.validate); one client per provider per process."""

import inspect
import json
import os
import re
import threading

from tests.helpers import start_sandbox
import httpx
import pytest

from playground.providers.adapter import Adapter
from playground.providers.client import process_client
from playground.providers.errors import DEFAULT_RETRY_AFTER, ProviderError
from playground.providers.kawai import KawaiAdapter
from playground.providers.kie import KieAdapter
from playground.providers.kvid import KvidAdapter
from playground.providers.kwiki import KwikiAdapter
from playground.providers.registry import openai_compatible

OPENAI_LIKE = openai_compatible({"key": "openai_like", "base_url": "https://api.example.com/v1", "multipart_images": True})
ADAPTERS = [KieAdapter, KvidAdapter, KawaiAdapter, KwikiAdapter, OPENAI_LIKE]

# The base's HTTP path: no adapter replaces any of it.
BASE_PATH = {"_request", "_send", "read", "http_error", "json_body", "key_verdict", "__init__"}


def own_methods(cls) -> set[str]:
    """Names the adapter (and its bases below Adapter) define themselves."""
    names = set()
    for klass in cls.__mro__:
        if klass is Adapter or not issubclass(klass, Adapter):
            continue
        names |= {n for n, v in vars(klass).items() if callable(v) or isinstance(v, (staticmethod, classmethod))}
    return names


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.key)
def test_every_adapter_reads_errors_only_through_the_one_hook(cls):
    own = own_methods(cls)
    assert not own & BASE_PATH
    helpers = sorted(n for n in own if re.search(r"send|raise|error", n) and n != "raise_for_response")
    assert helpers == [], f"{cls.__name__} has its own send/raise helpers: {helpers}"
    assert "raise_for_response" in own
    # The status mapping, the hint reading and the client belong to the base.
    source = inspect.getsource(inspect.getmodule(cls))
    for name in ("self.client", "httpx.Client(", "kind_for_status", "retry_hint", "parse_retry_after", ".send("):
        assert name not in source, f"{cls.__name__}'s module uses {name}"


def test_every_request_of_every_adapter_goes_through_the_base_request(sandbox, monkeypatch):
    calls, sent = [], []
    real = Adapter._request

    def counting(self, req, **kwargs):
        calls.append(req.url)
        return real(self, req, **kwargs)

    monkeypatch.setattr(Adapter, "_request", counting)
    client = httpx.Client(timeout=30, event_hooks={"request": [lambda request: sent.append(str(request.url))]})

    def make(cls, prefix):
        return cls(base_url=sandbox.url + prefix, api_key="sandbox-key", client=client)

    kie = make(KieAdapter, "/kie")
    kie.check("seedream-v4", kie.submit("seedream-v4", {"prompt": "a pine cone"}).job_id)
    assert kie.key_check()
    kvid = make(KvidAdapter, "/kvid")
    kvid.check("text-to-image", kvid.submit("text-to-image", {"prompt": "a pine cone"}).job_id)
    assert kvid.key_check()
    make(KawaiAdapter, "/kawai/v1").submit("generations", {"prompt": "a pine cone"})
    make(KwikiAdapter, "/kwiki").submit("generate", {"prompt": "a pine cone"})
    assert len(sent) >= 8
    assert calls == sent


# --- one default wait for a 429 without a hint, over HTTP ------------------------------------


def without_hints(sb):
    """The sandbox, with every rate-limit hint taken out of its answers."""
    dispatch = sb.app.dispatch

    def stripped(req):
        resp = dispatch(req)
        resp.headers = {k: v for k, v in resp.headers.items() if k not in ("Retry-After", "X-RateLimit-Reset")}
        try:
            body = json.loads(resp.body)
        except ValueError:
            return resp
        if isinstance(body, dict) and "retry_after" in body:
            del body["retry_after"]
            resp.body = json.dumps(body).encode()
        return resp

    sb.app.dispatch = stripped
    return sb


@pytest.fixture
def hintless(tmp_path):
    sb = without_hints(start_sandbox(tmp_path, latency=0.0))
    yield sb
    sb.stop()


RATE_LIMITED = [
    (KieAdapter, "/kie", "seedream-v4"),
    (KvidAdapter, "/kvid", "text-to-image"),
    (KawaiAdapter, "/kawai/v1", "generations"),
    (KwikiAdapter, "/kwiki", "generate"),
]


def rate_limited(sb, cls, prefix, model) -> ProviderError:
    adapter = cls(base_url=sb.url + prefix, api_key="sandbox-key")
    with pytest.raises(ProviderError) as e:
        adapter.submit(model, {"prompt": "a quiet harbour [429]"})
    assert (e.value.kind, e.value.status) == ("rate_limited", 429)
    return e.value


def test_a_429_without_a_hint_waits_the_one_documented_default_for_every_provider(hintless):
    waits = {cls.key: rate_limited(hintless, cls, prefix, model).retry_after for cls, prefix, model in RATE_LIMITED}
    assert waits == {cls.key: DEFAULT_RETRY_AFTER for cls, _, _ in RATE_LIMITED}
    assert DEFAULT_RETRY_AFTER == 10.0  # the figure errors.py documents


def test_a_429_with_a_hint_still_waits_the_hint(sandbox):
    # The same markers with the sandbox's hints left in: 1 s each.
    for cls, prefix, model in RATE_LIMITED:
        assert rate_limited(sandbox, cls, prefix, model).retry_after == 1.0


# --- one client per provider per process ---------------------------------------------------


def test_adapters_of_one_provider_share_one_client_and_a_forked_child_gets_its_own(sandbox):
    url = sandbox.url + "/kie"
    a = KieAdapter(base_url=url, api_key="sandbox-key")
    b = KieAdapter(base_url=url, api_key="second-key")
    assert a.client is b.client
    assert KvidAdapter(base_url=sandbox.url + "/kvid", api_key="sandbox-key").client is not a.client
    assert a.key_check() and b.key_check()

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report over the pipe, never return into pytest
        try:
            c = KieAdapter(base_url=url, api_key="sandbox-key")
            d = KieAdapter(base_url=url, api_key="sandbox-key")
            report = {"own": c.client is not a.client, "shared": c.client is d.client, "works": c.key_check()}
            os.write(write, json.dumps(report).encode())
        except BaseException as e:  # noqa: BLE001 - anything is a failure to report
            os.write(write, json.dumps({"error": repr(e)[:300]}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report == {"own": True, "shared": True, "works": True}
    assert KieAdapter(base_url=url, api_key="sandbox-key").client is a.client  # the parent keeps its own
    assert a.key_check()


def test_a_process_id_change_alone_gets_a_new_client(monkeypatch):
    # Even where the fork hook did not run (a fork from C), a client is
    # never used by a process other than the one that built it.
    a = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    real = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real + 100_000)
    b = KieAdapter(base_url="https://api.kie.ai", api_key="k")
    assert b.client is not a.client
    assert KieAdapter(base_url="https://api.kie.ai", api_key="k").client is b.client


def test_a_hundred_adapters_build_one_client(monkeypatch):
    cls = openai_compatible({"key": "counted", "base_url": "https://api.example.com/v1"})
    built = []
    real_init = httpx.Client.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting)
    adapters = [cls(base_url="https://api.example.com/v1", api_key="k") for _ in range(100)]
    assert len(built) == 1 and all(a.client is built[0] for a in adapters)
    assert adapters[0]._request_timeout == cls.timeout  # the adapter's own timeouts on every request


def test_threads_starting_together_share_one_client():
    cls = openai_compatible({"key": "raced", "base_url": "https://api.example.com/v1"})
    barrier, clients = threading.Barrier(8), []

    def first_use():
        barrier.wait()
        clients.append(process_client(cls))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(clients) == 8 and len({id(c) for c in clients}) == 1


def test_a_short_timeout_needs_no_client_of_its_own(monkeypatch):
    # A key check wants 10 s, not a generation's minutes: the shared client, its own timeout.
    seen = []
    monkeypatch.setattr(httpx.Client, "request", lambda self, *a, **kw: seen.append(kw["timeout"]) or httpx.Response(
        404, json={"code": 404, "msg": "not found"}))
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k", timeout=httpx.Timeout(10.0))
    assert adapter.client is KieAdapter(base_url="https://api.kie.ai", api_key="k").client
    assert adapter.key_check() and seen == [httpx.Timeout(10.0)]


def test_a_callers_own_client_is_used_and_keeps_its_timeout():
    own = httpx.Client(timeout=httpx.Timeout(10.0))
    adapter = KieAdapter(base_url="https://api.kie.ai", api_key="k", client=own)
    assert adapter.client is own and adapter._request_timeout is httpx.USE_CLIENT_DEFAULT
    own.close()


# --- parameters checked by their declarations -------------------------------------------


def tripwire(cls, base_url):
    sent = []

    def handler(request):
        sent.append(request)
        return httpx.Response(500)

    return cls(base_url=base_url, api_key="k", client=httpx.Client(transport=httpx.MockTransport(handler))), sent


BAD_VALUES = [
    (KieAdapter, "seedream-v4", {"prompt": "a kite", "num_inference_steps": 0}, "num_inference_steps",
     "Steps must be a whole number from 1 to 50."),
    (KieAdapter, "qwen", {"prompt": "a boat", "seed": "seven"}, "seed", "Seed must be a whole number"),
    (KieAdapter, "gpt4o-image", {"prompt": "a kite", "n_variants": 3}, "n_variants", "Variants must be one of: 1, 2, 4."),
    (KvidAdapter, "text-to-image", {"prompt": "a lake", "num_images": 5}, "num_images", "from 1 to 4"),
    (KvidAdapter, "text-to-image", {"prompt": "a lake", "guidance_scale": 4}, "guidance_scale", "one of: 3.0, 5.0"),
    (KawaiAdapter, "generations", {"prompt": "a lake", "size": "large"}, "size", "Size must look like 1024x1024."),
    (KawaiAdapter, "generations", {"size": "512x512"}, "prompt", "Prompt is required."),
    (KwikiAdapter, "generate", {"prompt": "portrait photo in a park", "style": "nude", "age": 17}, "age",
     "Age must be a whole number from 18 to 70."),
    (KwikiAdapter, "generate", {"prompt": "   "}, "prompt", "A prompt is required."),
    (OPENAI_LIKE, "generations", {"prompt": "a lake", "n": 11}, "n", "Images must be a whole number from 1 to 10."),
]


@pytest.mark.parametrize("cls, model, params, field, message", BAD_VALUES,
                         ids=[f"{c.key}-{f}" for c, _, _, f, _ in BAD_VALUES])
def test_validate_refuses_a_bad_value_naming_the_field_and_nothing_is_sent(cls, model, params, field, message):
    with pytest.raises(ProviderError) as e:
        cls.model(model).validate(params)
    assert (e.value.kind, e.value.field, e.value.status) == ("validation", field, None)
    assert message in e.value.message
    adapter, sent = tripwire(cls, cls.default_base_url)
    with pytest.raises(ProviderError) as e:
        adapter.submit(model, params)
    assert (e.value.kind, e.value.field) == ("validation", field)
    assert sent == []


def test_validate_skips_what_is_not_sent_and_lets_a_declared_default_stand_in():
    # The width applies only to a custom size: with an aspect ratio it is not sent.
    KvidAdapter.model("text-to-image").validate({"prompt": "a lake", "size_mode": "aspect_ratio", "width": 99999})
    # Flux Kontext's model is required, with a default the provider uses too.
    KieAdapter.model("flux-kontext").validate({"prompt": "a lake"})
    # Kwiki's ages apply only to the adult style.
    KwikiAdapter.model("generate").validate({"prompt": "a lake", "style": "anime", "age": 12})
    # A text param's choices are suggestions only.
    KawaiAdapter.model("generations").validate({"prompt": "a lake", "size": "640x480"})
