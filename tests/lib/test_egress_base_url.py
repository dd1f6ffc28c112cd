"""A team's base URL cannot send the team's key anywhere but where it was
checked to go (RELIABILITY 6): no userinfo tricks, exact sandbox match, and
the address checked is the address connected to (no DNS rebinding)."""

import socket

from django.contrib.messages import get_messages
from django.urls import reverse
import httpx
import pytest

from playground.generations.pipeline import create
from playground.lib.net.guard import guarded_client, is_sandbox_url
from playground.accounts.models import Endpoint, ProviderCredential
from playground.generations.models import Generation
from playground.providers.errors import ProviderError

from tests.helpers import run_tasks
from tests.lib.egress_server import RecordingServer

KEY = "kie-live-Q7x9Lm2Pz8Rt4Vw6"


@pytest.fixture
def other_host():
    with RecordingServer() as s:
        yield s


def team_cred(team, base_url):
    cred = ProviderCredential(team=team, provider="kie")
    cred.set_key(KEY)
    cred.save()
    # Written directly, as if saved before the check existed.
    ProviderCredential.objects.filter(pk=cred.pk).update(base_url=base_url)
    return cred


def new_job(team, user):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pine cone"})


@pytest.mark.parametrize("trick", ["{sandbox}@{other}/kie", "{sandbox}@{other}", "http://@{other}/kie",
                                   "{sandbox}:pw@{other}/kie"])
def test_a_base_url_with_userinfo_is_refused_when_saved(client_in, team, sandbox, other_host, trick):
    url = trick.format(sandbox=sandbox.url, other=other_host.host)
    response = client_in.post(reverse("save_credential", args=["kie"]), {"api_key": KEY, "base_url": url})
    assert response.status_code == 302
    assert not ProviderCredential.objects.filter(team=team).exists()
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "refused" in shown or "Enter a valid URL" in shown
    assert other_host.requests == []


def test_the_sandbox_itself_is_still_accepted_as_a_base_url(client_in, team, sandbox):
    response = client_in.post(reverse("save_credential", args=["kie"]), {"api_key": KEY, "base_url": sandbox.url + "/kie"})
    assert response.status_code == 302
    assert ProviderCredential.objects.get(team=team).base_url == sandbox.url + "/kie"


def test_the_sandbox_match_is_exact_on_scheme_host_and_port(sandbox):
    assert is_sandbox_url(sandbox.url + "/kie")
    assert not is_sandbox_url(sandbox.url + "0/kie")  # port 80010... is another port
    assert not is_sandbox_url(sandbox.url.replace("http:", "https:") + "/kie")
    assert not is_sandbox_url(f"{sandbox.url}@example.com/kie")
    assert not is_sandbox_url(sandbox.url.replace("127.0.0.1", "127.0.0.1.example.com"))


def test_a_userinfo_base_url_in_the_database_fails_the_job_without_sending_the_key(
        sandbox, team, user, other_host):
    team_cred(team, f"{sandbox.url}@{other_host.host}/kie")
    gen = new_job(team, user)
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "config")
    assert "user name or password" in gen.error_message
    assert other_host.requests == []


def test_a_private_base_url_is_refused_where_the_connection_is_made(sandbox, other_host):
    # No check ahead of time: the connection itself refuses, before sending.
    adapter = Endpoint("kie", other_host.url + "/kie", KEY, "team").adapter()
    with pytest.raises(ProviderError) as e:
        adapter.submit("seedream-v4", {"prompt": "a pine cone"})
    assert e.value.kind == "config" and "non-public" in e.value.message
    assert other_host.requests == []


def rebinding_resolver(monkeypatch, name, answers):
    """getaddrinfo answering `name` with answers[0], then answers[1], ...
    (the last one repeats); other names resolve normally."""
    real = socket.getaddrinfo
    calls = []

    def fake(host, port, *args, **kwargs):
        if host == name:
            ip = answers[min(len(calls), len(answers) - 1)]
            calls.append(ip)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


def test_dns_rebinding_cannot_reach_a_private_address(sandbox, team, user, other_host, monkeypatch):
    # Public for the check, private for anything after it.
    calls = rebinding_resolver(monkeypatch, "rebind.example", ["93.184.215.14", "127.0.0.1"])
    team_cred(team, f"http://rebind.example:{other_host.port}/kie")
    gen = new_job(team, user)
    run_tasks(until=gen)
    assert calls, "the resolver was used"
    assert other_host.requests == []  # never connected to the second answer
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "config")
    assert KEY not in gen.error_message


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch, other_host):
    # The first (checked) answer is the server; later answers point
    # elsewhere. One lookup, and the request reaches the checked address.
    calls = rebinding_resolver(monkeypatch, "pinned.example", ["127.0.0.1", "10.255.255.1"])
    with guarded_client(lambda: [f"pinned.example:{other_host.port}"], timeout=5.0) as client:
        resp = client.get(f"http://pinned.example:{other_host.port}/hello")
    assert resp.status_code == 401
    assert calls == ["127.0.0.1"]
    assert [r["path"] for r in other_host.requests] == ["/hello"]
    assert other_host.requests[0]["headers"]["Host"] == f"pinned.example:{other_host.port}"


def test_proxies_from_the_environment_are_not_used(monkeypatch, other_host):
    # A proxy would be the address checked instead of the target.
    monkeypatch.setenv("HTTP_PROXY", other_host.url)
    with guarded_client(lambda: [], timeout=5.0) as client:
        with pytest.raises(Exception) as e:
            client.get("http://10.1.2.3/")
    assert "non-public" in str(e.value)
    assert other_host.requests == []
    assert not isinstance(e.value, httpx.ProxyError)


def test_team_adapters_share_one_guarded_client_and_keep_their_own_timeouts(sandbox):
    from playground.providers.kawai import KawaiAdapter

    a = Endpoint("kawai", "https://api.example.com", KEY, "team").adapter()
    b = Endpoint("kie", "https://api.example.com", KEY, "team").adapter()
    assert a.client is b.client
    assert a._request_timeout == KawaiAdapter.timeout and a._request_timeout.read == 300.0


@pytest.mark.parametrize("url", ["http://@example.com/x.png", "http://user@example.com/x.png"])
def test_a_download_url_with_any_userinfo_is_refused(url):
    from playground.lib.net.download import DownloadError, check_url, fetch

    with pytest.raises(DownloadError, match="credentials"):
        check_url(url, allowed_private=[])
    with pytest.raises(DownloadError, match="credentials"):
        fetch(url, allowed_private=[])


def test_test_this_key_uses_the_checked_connection_too(client_in, sandbox, team, other_host, monkeypatch):
    # "Test this key" on the Team page sends the team's key to its base URL:
    # the same one lookup and checked address as a job (no second lookup).
    team_cred(team, f"http://rebind.example:{other_host.port}/kie")
    calls = rebinding_resolver(monkeypatch, "rebind.example", ["93.184.215.14", "127.0.0.1"])
    page = client_in.post(reverse("test_key", args=["kie"]), follow=True).content.decode()
    assert calls, "the resolver was used"
    assert other_host.requests == []  # the private second answer was never reached
    assert "could not test" in page
    assert KEY not in page


def test_a_forked_process_gets_its_own_guarded_client():
    import os

    from playground.lib.net.guard import provider_client

    parent = provider_client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new client, never the parent's sockets
        os.write(write, b"1" if provider_client() is not parent else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert provider_client() is parent  # the parent keeps its own
