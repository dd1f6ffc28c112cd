"""Safe downloads of result images and checks of uploaded ones (RELIABILITY 6).

Result URLs come from outside, so a download cannot be turned inward: only
http(s); every resolved address must be public unless host:port is a
configured sandbox host; the connection goes to the address that was checked
(no DNS rebinding); every redirect is checked again; bytes and time are
capped. The bytes must decode as an allowed image type within a pixel cap,
and are re-encoded before anyone sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_REDIRECTS = 5


class DownloadError(Exception):
    def __init__(self, message: str, *, expired: bool = False, unresolved: bool = False, transient: bool = False):
        super().__init__(message)
        self.expired = expired
        self.unresolved = unresolved
        # A server error, a timeout or a dropped connection: worth trying again.
        self.transient = transient


def _is_public(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _is_public(mapped)
        if ip.teredo:
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise DownloadError(f"Cannot resolve host {host!r}.", unresolved=True) from e
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, allowed_private=None) -> tuple[str, str, str]:
    """Return (url to connect to, Host header, SNI host) or raise DownloadError."""
    allowed_private = {h.lower() for h in (allowed_private if allowed_private is not None else settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS)}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"Refused a {parts.scheme or 'schemeless'} URL: only http and https are downloaded.")
    host = parts.hostname
    if not host:
        raise DownloadError("Refused a URL without a host.")
    if parts.username or parts.password:
        raise DownloadError("Refused a URL with credentials in it.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DownloadError("Refused a URL with an invalid port.") from None
    addresses = _resolve(host, port)
    if not addresses:
        raise DownloadError(f"Host {host!r} has no address.")
    private_ok = f"{host.lower()}:{port}" in allowed_private
    for addr in addresses:
        ip = ipaddress.ip_address(addr.split("%")[0])
        if not private_ok and not _is_public(ip):
            raise DownloadError(f"Refused {host}: it resolves to a non-public address.")
    ip = addresses[0]
    ip_host = f"[{ip}]" if ":" in ip else ip
    netloc = f"{ip_host}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, host


class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write gets at most the time left until the deadline, so
    a server trickling its headers or body one byte at a time cannot hold a
    worker past the download's time cap."""

    def __init__(self, stream, deadline):
        self._stream, self._deadline = stream, deadline

    def _left(self, timeout):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("download deadline reached")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes, timeout=None):
        return self._stream.read(max_bytes, self._left(timeout))

    def write(self, buffer, timeout=None):
        self._stream.write(buffer, self._left(timeout))

    def close(self):
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, self._left(timeout)), self._deadline)

    def get_extra_info(self, info):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def __init__(self, deadline):
        self._deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("download deadline reached")
        stream = super().connect_tcp(host, port, min(timeout or left, left), local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)


def _deadline_client(deadline: float, read_timeout: float) -> httpx.Client:
    client = httpx.Client(timeout=httpx.Timeout(read_timeout), follow_redirects=False)
    client._transport._pool._network_backend = _DeadlineBackend(deadline)
    return client


def fetch(url: str, *, max_bytes=None, timeout=None, allowed_private=None, client: httpx.Client | None = None) -> bytes:
    max_bytes = max_bytes or settings.DOWNLOAD_MAX_BYTES
    timeout = timeout or settings.DOWNLOAD_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    own = client is None
    client = client or _deadline_client(deadline, min(timeout, 30.0))
    try:
        for _ in range(MAX_REDIRECTS + 1):
            target, host_header, sni = check_url(url, allowed_private)
            try:
                with client.stream(
                    "GET", target, headers={"Host": host_header, "Accept": "image/*"},
                    extensions={"sni_hostname": sni},
                ) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise DownloadError("Redirect without a Location.")
                        url = urljoin(url, location)
                        continue
                    if resp.status_code != 200:
                        raise DownloadError(
                            f"The image URL answered HTTP {resp.status_code}.",
                            expired=resp.status_code in (403, 404, 410),
                            transient=resp.status_code in (408, 425, 429) or resp.status_code >= 500,
                        )
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise DownloadError(f"The image is larger than {max_bytes} bytes.")
                    buf = bytearray()
                    for chunk in resp.iter_bytes():
                        buf.extend(chunk)
                        if len(buf) > max_bytes:
                            raise DownloadError(f"The image is larger than {max_bytes} bytes.")
                        if time.monotonic() > deadline:
                            raise DownloadError(f"The download took longer than {timeout:.0f} s.")
                    return bytes(buf)
            except httpx.TimeoutException:
                if time.monotonic() >= deadline:
                    raise DownloadError(f"The download took longer than {timeout:.0f} s.", transient=True) from None
                raise DownloadError("The image server stopped answering.", transient=True) from None
            except httpx.HTTPError as e:
                raise DownloadError(f"The download failed: {type(e).__name__}.", transient=True) from None
        raise DownloadError("Too many redirects.")
    finally:
        if own:
            client.close()


@dataclass
class CheckedImage:
    data: bytes  # re-encoded
    format: str
    width: int
    height: int
    thumbnail: bytes

    @property
    def content_type(self):
        return ALLOWED_FORMATS[self.format]

    @property
    def extension(self):
        return EXTENSIONS[self.format]

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


def check_image(data: bytes, *, max_pixels=None, thumb_size=512) -> CheckedImage:
    """Decode within limits and re-encode; raise DownloadError otherwise."""
    max_pixels = max_pixels or settings.IMAGE_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as probe:
            fmt = probe.format
            w, h = probe.size
            if fmt not in ALLOWED_FORMATS:  # pragma: no cover - Image.open refuses them first
                raise DownloadError(f"{fmt or 'Unknown'} images are not accepted (PNG, JPEG or WebP).")
            if w * h > max_pixels:
                raise DownloadError(f"The image has {w}x{h} pixels, over the limit of {max_pixels}.")
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
            out = io.BytesIO()
            if fmt == "JPEG":
                img.convert("RGB").save(out, "JPEG", quality=95)
            elif fmt == "WEBP":
                img.save(out, "WEBP", quality=95)
            else:
                img.save(out, "PNG")
            thumb = img.copy()
            thumb.thumbnail((thumb_size, thumb_size))
            tbuf = io.BytesIO()
            thumb.save(tbuf, "WEBP", quality=80)
    except DownloadError:
        raise
    except UnidentifiedImageError:
        raise DownloadError("The file is not a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DownloadError(f"The file is not a valid image ({type(e).__name__}).") from None
    return CheckedImage(out.getvalue(), fmt, w, h, tbuf.getvalue())
