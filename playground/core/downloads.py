"""Safe downloads of result images and checks of uploaded ones (RELIABILITY 6).

Result URLs come from outside, so a download cannot be turned inward: only
http(s); every resolved address must be public unless host:port is a
configured sandbox host; the connection goes to the address that was checked
(no DNS rebinding: see egress.py); every redirect is checked again; bytes and time are
capped. The bytes must decode as an allowed image type within a pixel cap,
and are re-encoded before anyone sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from .egress import EgressRefused, download_allowed, guarded_client, is_public, resolve_checked

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


_is_public = is_public  # the one definition of "public" lives in egress


def _split(url: str):
    """scheme, host, port of an outside URL, or DownloadError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"Refused a {parts.scheme or 'schemeless'} URL: only http and https are downloaded.")
    host = parts.hostname
    if not host:
        raise DownloadError("Refused a URL without a host.")
    if "@" in parts.netloc:
        raise DownloadError("Refused a URL with credentials in it.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DownloadError("Refused a URL with an invalid port.") from None
    return parts, host, port


def check_url(url: str, allowed_private=None) -> tuple[str, str, str]:
    """Return (url to connect to, Host header, SNI host) or raise DownloadError.

    A check ahead of time (for messages at save time); fetch() and provider
    calls are checked again by the guarded connection itself."""
    allowed = allowed_private if allowed_private is not None else settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS
    parts, host, port = _split(url)
    try:
        infos = resolve_checked(host, port, allowed)
    except EgressRefused as e:
        raise DownloadError(str(e), unresolved=e.unresolved) from None
    ip = infos[0][4][0]
    ip_host = f"[{ip}]" if ":" in ip else ip
    netloc = f"{ip_host}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, host


def fetch(url: str, *, max_bytes=None, timeout=None, allowed_private=None, client: httpx.Client | None = None) -> bytes:
    max_bytes = max_bytes or settings.DOWNLOAD_MAX_BYTES
    timeout = timeout or settings.DOWNLOAD_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    own = client is None
    if own:
        allowed = list(allowed_private) if allowed_private is not None else None
        # The connection itself resolves once, checks every address and
        # connects to a checked one; every redirect is a new check.
        client = guarded_client(lambda: allowed if allowed is not None else download_allowed(),
                                deadline=deadline, timeout=min(timeout, 30.0))
    try:
        for _ in range(MAX_REDIRECTS + 1):
            _split(url)
            try:
                with client.stream("GET", url, headers={"Accept": "image/*"}) as resp:
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
            except EgressRefused as e:
                raise DownloadError(str(e), unresolved=e.unresolved) from None
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
