"""Result URLs come from outside: downloads cannot be turned inward (RELIABILITY 6)."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image
import pytest

from playground.lib.net.download import DownloadError, check_url, fetch
from playground.lib.images import check_image


def png(w=32, h=32, mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, (w, h), "teal").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.png", "http://localhost/x.png", "http://10.0.0.5/x.png", "http://192.168.1.1/x.png",
    "http://172.16.0.1/x.png", "http://169.254.169.254/latest/meta-data", "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png", "http://[fe80::1]/x.png", "http://0.0.0.0/x.png", "http://[fd00::1]/x.png",
    "http://2130706433/x.png",
])
def test_it_refuses_non_public_addresses(url):
    with pytest.raises(DownloadError, match="non-public|resolve"):
        check_url(url, allowed_private=[])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.png", "gopher://x", "//x/y", "http://user:pw@example.com/x.png"])
def test_it_refuses_other_schemes_and_credentials(url):
    with pytest.raises(DownloadError):
        check_url(url, allowed_private=[])


def test_a_configured_sandbox_host_is_allowed_only_on_its_port():
    target, host, sni = check_url("http://127.0.0.1:8001/kie/files/x.png", allowed_private=["127.0.0.1:8001"])
    assert target == "http://127.0.0.1:8001/kie/files/x.png" and host == "127.0.0.1:8001"
    with pytest.raises(DownloadError):
        check_url("http://127.0.0.1:8002/x.png", allowed_private=["127.0.0.1:8001"])


class _Server:
    def __init__(self, routes):
        routes_ = routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, headers, body = routes_[self.path]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()


def test_every_redirect_is_checked_again():
    with _Server({"/a.png": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b"")}) as s:
        with pytest.raises(DownloadError, match="non-public"):
            fetch(f"http://{s.host}/a.png", allowed_private=[s.host])


def test_a_redirect_to_an_allowed_host_is_followed():
    with _Server({"/a.png": (302, {"Location": "/b.png"}, b""), "/b.png": (200, {}, png())}) as s:
        assert fetch(f"http://{s.host}/a.png", allowed_private=[s.host]) == png()


def test_bytes_are_capped_even_without_a_content_length():
    with _Server({"/big.png": (200, {}, b"x" * 50_000)}) as s:
        with pytest.raises(DownloadError, match="larger than"):
            fetch(f"http://{s.host}/big.png", allowed_private=[s.host], max_bytes=10_000)


def test_an_expired_url_is_reported_as_such():
    with _Server({"/gone.png": (403, {}, b"expired")}) as s:
        with pytest.raises(DownloadError) as e:
            fetch(f"http://{s.host}/gone.png", allowed_private=[s.host])
    assert e.value.expired


def test_only_allowed_image_types_within_the_pixel_cap_pass_and_are_reencoded():
    checked = check_image(png(40, 30))
    assert (checked.format, checked.width, checked.height) == ("PNG", 40, 30)
    with pytest.raises(DownloadError, match="over the limit"):
        check_image(png(300, 300), max_pixels=10_000)
    with pytest.raises(DownloadError, match="not a PNG, JPEG or WebP"):
        check_image(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(DownloadError, match="not a PNG, JPEG or WebP"):
        check_image(gif.getvalue())
    with pytest.raises(DownloadError):
        check_image(png()[:60])  # truncated


def test_reencoding_drops_trailing_payloads():
    data = png() + b"<script>alert(1)</script>"
    assert b"<script>" not in check_image(data).data


def test_a_server_trickling_its_headers_cannot_hold_a_worker_past_the_time_cap():
    import socket
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def trickle():
        conn, _ = srv.accept()
        conn.recv(4096)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if stop.is_set():
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="longer than"):
            fetch(f"http://127.0.0.1:{port}/x.png", allowed_private=[f"127.0.0.1:{port}"], timeout=1.0)
    finally:
        stop.set()
        srv.close()
    assert time.monotonic() - start < 3
