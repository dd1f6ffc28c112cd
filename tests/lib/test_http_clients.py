"""The app's HTTP clients are plain httpx.Clients, one long-lived client per
process and provider (providers.client.process_client), and one per process
for guarded calls (lib/net/guard.py): redirects are returned, not followed
(the caller checks each one), and no cookie is kept or sent back."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import httpx
import pytest

from playground.lib.net import guard
from playground.providers import registry
from playground.providers.client import process_client


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_GET(self):
        Handler.seen.append((self.path, self.headers.get("Cookie")))
        if self.path.startswith("/moved"):
            body, status, extra = b"", 302, [("Location", "/json"), ("Set-Cookie", "track=1; Path=/")]
        else:
            body, status, extra = b'{"ok": true, "n": 3}', 200, [("Set-Cookie", "track=2; Path=/")]
        self.send_response(status)
        for k, v in [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def clients(server):
    adapter = next(iter(registry.adapter_classes().values()))
    here = server.removeprefix("http://")  # a private address: allowed by name
    return [process_client(adapter), guard.guarded_client(lambda: [here])]


def test_one_long_lived_client_per_process_and_provider():
    for cls in registry.adapter_classes().values():
        assert process_client(cls) is process_client(cls)
        assert isinstance(process_client(cls), httpx.Client)


def test_a_redirect_is_returned_not_followed(server):
    for client in clients(server):
        r = client.get(f"{server}/moved")
        assert r.status_code == 302 and r.is_redirect and r.headers["location"] == "/json"


def test_no_cookie_is_kept_or_sent_back(server):
    for client in clients(server):
        Handler.seen.clear()
        client.get(f"{server}/json")
        client.get(f"{server}/moved")
        client.get(f"{server}/json")
        assert not client.cookies
        assert [cookie for _, cookie in Handler.seen] == [None, None, None]
