"""A refused request harms nobody after it: the next request on the same
keep-alive connection is served normally (RELIABILITY 11), with the web
process as `serve` runs it (gunicorn + uvicorn's worker, playground/asgi.py).

Issue 23: a large body on a waiting API endpoint (a 300 KiB JSON answered
413, a 25 MiB upload answered 400) left the connection's next request a 500
(`RuntimeError: ThreadSensitiveContext has exited`)."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest

from tests.api.served import served_web


@pytest.fixture
def web(transactional_db, tmp_path):
    with served_web(tmp_path, BEHIND_PROXY="false") as served:
        yield served


def exchange(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r, r.read()


def then_the_next_requests_are_served(web, conn, first):
    """After `first` (a refused request), the same connection serves two more."""
    sock = conn.sock
    assert first.getheader("connection", "").lower() != "close", "the server closed the connection"
    for path in ("/healthz", "/healthz"):
        r, body = exchange(conn, "GET", path)
        assert (r.status, body) == (200, b"ok"), f"{r.status} {body[:300]!r}\n{web[2].read_text()[-3000:]}"
        assert conn.sock is sock, "the request went on a new connection, not the kept-alive one"
    assert "ThreadSensitiveContext" not in web[2].read_text()


@pytest.mark.parametrize("repeat", range(3))
def test_after_a_json_body_too_large_the_next_request_is_served(web, secret, repeat):
    host, port, _ = web
    conn = http.client.HTTPConnection(host, port, timeout=60)
    body = json.dumps({"model": "kie/seedream-v4", "prompt": "x" * (300 * 1024)}).encode()
    r, answer = exchange(conn, "POST", "/v1/images/generations", body,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    assert r.status == 413, answer[:300]
    assert json.loads(answer)["error"]["code"] == "request_too_large"
    then_the_next_requests_are_served(web, conn, r)
    conn.close()


def test_after_a_25_mib_upload_is_refused_the_next_request_is_served(web, secret):
    host, port, _ = web
    conn = http.client.HTTPConnection(host, port, timeout=120)
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nkie/seedream-v4\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nmake it blue\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
        "Content-Type: image/png\r\n\r\n".encode(),
        b"\x89PNG\r\n\x1a\n" + b"\0" * (25 * 1024 * 1024), f"\r\n--{boundary}--\r\n".encode(),
    ])
    r, answer = exchange(conn, "POST", "/v1/images/edits", body,
                         {"Content-Type": f"multipart/form-data; boundary={boundary}",
                          "Authorization": f"Bearer {secret}"})
    assert 400 <= r.status < 500, answer[:300]
    then_the_next_requests_are_served(web, conn, r)
    conn.close()


def test_after_a_large_refused_post_to_a_page_the_next_request_is_served(web):
    """The same on a page (Django's own handler, not the waiting endpoints)."""
    host, port, _ = web
    conn = http.client.HTTPConnection(host, port, timeout=120)
    body = b"username=" + b"a" * (25 * 1024 * 1024)
    r, _ = exchange(conn, "POST", "/login/", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= r.status < 500
    then_the_next_requests_are_served(web, conn, r)
    conn.close()
