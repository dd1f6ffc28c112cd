"""'Test this key' on the Team page, over real HTTP against the sandboxes,
for the providers whose contract has a call that costs nothing (a status
lookup of a job that does not exist); the others say the first job tells."""

from http.server import BaseHTTPRequestHandler, HTTPServer
import re
import socket
import threading

import pytest
from django.urls import reverse

from playground.accounts.models import Membership
from playground.providers import registry
from playground.providers.errors import ProviderError
from playground.providers.kie import KieAdapter
from playground.providers.kvid import KvidAdapter


def save_key(client, provider, key, base_url):
    r = client.post(reverse("save_credential", args=[provider]), {"api_key": key, "base_url": base_url})
    assert r.status_code == 302


def press_test_key(client, provider):
    r = client.post(reverse("test_key", args=[provider]), follow=True)
    assert r.status_code == 200
    return r.content.decode()


@pytest.mark.parametrize("provider, label", [("kie", "KIE.ai"), ("kvid", "kvid.ai")])
def test_a_key_the_provider_accepts_works(client_in, sandbox, provider, label):
    save_key(client_in, provider, "second-key", f"{sandbox.url}/{provider}")
    page = press_test_key(client_in, provider)
    assert f"{label}: this team&#x27;s key works (the provider accepted it)." in page
    assert "second-key" not in page


@pytest.mark.parametrize("provider, label", [("kie", "KIE.ai"), ("kvid", "kvid.ai")])
def test_a_key_the_provider_rejects_is_reported(client_in, sandbox, provider, label):
    save_key(client_in, provider, "wrong-key-1234", f"{sandbox.url}/{provider}")
    page = press_test_key(client_in, provider)
    assert f"{label}: this team&#x27;s key was rejected by the provider." in page
    assert "wrong-key-1234" not in page


def test_without_a_team_key_the_sandbox_key_is_tested(client_in, sandbox):
    assert "KIE.ai: the sandbox key works" in press_test_key(client_in, "kie")


def test_an_unreachable_base_url_is_reported_with_the_reason(client_in, sandbox, settings):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS = [*settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS, f"127.0.0.1:{port}"]
    save_key(client_in, "kvid", "second-key", f"http://127.0.0.1:{port}/kvid")
    page = press_test_key(client_in, "kvid")
    assert "kvid.ai: could not test this team&#x27;s key: Could not connect to kvid.ai" in page


def test_the_adapters_tell_an_accepted_key_from_a_rejected_one(sandbox):
    assert KieAdapter(base_url=f"{sandbox.url}/kie", api_key="second-key").key_check() is True
    assert KieAdapter(base_url=f"{sandbox.url}/kie", api_key="nope").key_check() is False
    assert KvidAdapter(base_url=f"{sandbox.url}/kvid", api_key="second-key").key_check() is True
    assert KvidAdapter(base_url=f"{sandbox.url}/kvid", api_key="nope").key_check() is False


def test_a_web_page_instead_of_the_api_is_not_called_working():
    class Html(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Not Found</body></html>")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ProviderError) as e:
            KieAdapter(base_url=f"http://127.0.0.1:{server.server_port}", api_key="k").key_check()
        assert e.value.kind == "bad_response" and "not the KIE.ai API" in e.value.message
    finally:
        server.shutdown()
        server.server_close()


def test_the_button_is_offered_only_where_a_free_call_exists(client_in, sandbox):
    page = client_in.get(reverse("team")).content.decode()
    rows = {re.match(r'\s*id="provider-(\w+)"', part).group(1): part
            for part in page.split('<div class="provider-row"')[1:]}
    for key, cls in registry.adapter_classes().items():
        row = rows[key]
        has_button = reverse("test_key", args=[key]) in row
        assert has_button == cls.can_check_key, key
        if not cls.can_check_key:
            assert "the first job will tell whether the key works" in row
    assert {k for k, c in registry.adapter_classes().items() if c.can_check_key} == {"kie", "kvid"}


def test_a_provider_without_a_free_call_makes_no_request(client_in, sandbox):
    page = press_test_key(client_in, "kwiki")
    assert "Kwiki AI has no free call to test a key with: the first job will tell" in page


def test_members_cannot_test_keys(client, sandbox, team, other_user):
    Membership.objects.create(team=team, user=other_user, role=Membership.MEMBER)
    client.force_login(other_user)
    client.post(reverse("switch_team"), {"team": str(team.uuid)})
    page = press_test_key(client, "kie")
    assert "Only a team owner can change this." in page and "works" not in page


# --- "Remove the stored key" only when a key is stored ---------------------------------


def test_remove_is_offered_only_when_a_key_is_stored(client_in, sandbox, settings):
    page = client_in.get(reverse("team")).content.decode()
    assert "Remove the stored key" not in page
    save_key(client_in, "kie", "second-key", "")
    page = client_in.get(reverse("team")).content.decode()
    kie = page[page.index('id="provider-kie"'):page.index('id="provider-kvid"')]
    assert "Remove the stored key (back to the sandbox)" in kie
    assert page.count("Remove the stored key") == 1


def test_a_base_url_alone_is_not_a_stored_key(client_in, sandbox):
    save_key(client_in, "kvid", "", f"{sandbox.url}/kvid")
    assert "Remove the stored key" not in client_in.get(reverse("team")).content.decode()


def test_remove_says_where_requests_go_when_an_instance_key_exists(client_in, sandbox, settings):
    settings.PROVIDER_ENV = {**settings.PROVIDER_ENV, "kie": {"api_key": "instance-key", "base_url": ""}}
    save_key(client_in, "kie", "second-key", f"{sandbox.url}/kie")
    page = client_in.get(reverse("team")).content.decode()
    assert "Remove the stored key (back to the instance-wide key)" in page
