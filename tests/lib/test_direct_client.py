"""DirectClient (lib/egress.py): the workers' and web's HTTP client sends
straight to its transport, and answers as httpx.Client does for what the app
uses (statuses, headers, bodies, streaming, timeouts, errors), without
following redirects or keeping cookies."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
import threading

import httpx
import pytest

from playground.lib.egress import DirectClient


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


def both():
    return [DirectClient(follow_redirects=False), httpx.Client(follow_redirects=False)]


def test_answers_are_those_of_httpx_client(server):
    answers = []
    for client in both():
        with client:
            r = client.get(f"{server}/json", params={"taskId": "a b"}, headers={"Authorization": "Bearer k"})
            answers.append((r.status_code, r.json(), r.headers["content-type"], str(r.request.url), r.is_closed))
            assert r.elapsed.total_seconds() >= 0
    assert answers[0] == answers[1] == (200, {"ok": True, "n": 3}, "application/json",
                                        f"{server}/json?taskId=a+b", True)


def test_a_redirect_is_returned_not_followed(server):
    with DirectClient(follow_redirects=False) as client:
        r = client.get(f"{server}/moved")
    assert r.status_code == 302 and r.is_redirect and r.headers["location"] == "/json"


def test_no_cookie_is_kept_or_sent_back(server):
    Handler.seen.clear()
    with DirectClient(follow_redirects=False) as client:
        client.get(f"{server}/json")
        client.get(f"{server}/json")
        assert not client.cookies
    assert [cookie for _, cookie in Handler.seen] == [None, None]


def test_a_streamed_answer_is_read_as_it_comes(server):
    with DirectClient(follow_redirects=False) as client:
        with client.stream("GET", f"{server}/json") as r:
            assert not r.is_closed
            assert b"".join(r.iter_bytes()) == b'{"ok": true, "n": 3}'
        assert r.is_closed


def test_a_server_that_never_answers_times_out_with_the_request_named():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection in the kernel, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/json"
    try:
        with DirectClient(follow_redirects=False, timeout=httpx.Timeout(0.05)) as client:
            with pytest.raises(httpx.ReadTimeout) as caught:
                client.get(url)
        assert str(caught.value.request.url) == url
    finally:
        listener.close()


def test_auth_and_hooks_take_httpx_clients_own_path(server):
    seen = []
    with DirectClient(follow_redirects=False, event_hooks={"request": [lambda req: seen.append(req.url.path)]}) as c:
        assert c.get(f"{server}/json").status_code == 200
    with DirectClient(follow_redirects=False) as c:
        r = c.get(f"{server}/json", auth=("user", "pw"))
        assert r.request.headers["authorization"].startswith("Basic ")
        assert c.get(f"{server}/moved", follow_redirects=True).status_code == 200  # followed when asked
    assert seen == ["/json"]


def test_a_closed_client_refuses_to_send(server):
    client = DirectClient(follow_redirects=False)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get(f"{server}/json")
