"""Downloads of result images (RELIABILITY 6): fetch() with byte and time
caps over a guarded connection, check_url() ahead of time, DownloadError.

Result URLs come from outside, so a download cannot be turned inward: only
http(s); every resolved address must be public unless host:port is a
configured sandbox host; the connection goes to the address that was checked
(no DNS rebinding: see guard.GuardedBackend); every redirect is checked
again; bytes and time are capped. The bytes are checked as an image by
playground.lib.images.
"""

from __future__ import annotations

import ipaddress
import re
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

from .addresses import EgressRefused, download_allowed, parse_host_port, resolve_checked
from .guard import guarded_client


MAX_REDIRECTS = 5


class DownloadError(Exception):
    def __init__(self, message: str, *, expired: bool = False, unresolved: bool = False, transient: bool = False):
        super().__init__(message)
        self.expired = expired
        self.unresolved = unresolved
        # A server error, a timeout or a dropped connection: worth trying again.
        self.transient = transient


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _split(url: str):
    """The parts, host and port of an outside URL, or DownloadError (final:
    not transient, not expired) for one that cannot be parsed or must not be
    fetched. Nothing is looked up."""
    if not isinstance(url, str):
        raise DownloadError("Refused a URL that is not text.")
    if _CONTROL.search(url) or url != url.strip():
        raise DownloadError("Refused a URL with control characters or surrounding spaces in it.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DownloadError("Refused a URL that cannot be parsed.") from None
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"Refused a {parts.scheme or 'schemeless'} URL: only http and https are downloaded.")
    if "@" in parts.netloc:
        raise DownloadError("Refused a URL with credentials in it.")
    if not parts.netloc:
        raise DownloadError("Refused a URL without a host.")
    try:
        host, port = parse_host_port(parts.netloc, 443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise DownloadError(f"Refused a URL with {e}.") from None
    return parts, host, port


def _parsed(url: str) -> httpx.URL:
    """The URL as httpx will send it, checked to name the host and port that
    _split read, or DownloadError (final)."""
    _, host, port = _split(url)
    try:
        parsed = httpx.URL(url)
        same = parsed.scheme in ("http", "https") and (parsed.port or (443 if parsed.scheme == "https" else 80)) == port
        if ":" in host:
            same = same and ipaddress.ip_address(parsed.host) == ipaddress.ip_address(host)
        else:
            same = same and parsed.host == host
    except (httpx.InvalidURL, ValueError, UnicodeError):  # idna's errors are UnicodeErrors
        raise DownloadError("Refused a URL that cannot be parsed.") from None
    if not same:
        raise DownloadError("Refused a URL whose host reads differently to different parsers.")
    return parsed


def check_url(url: str, allowed_private=None) -> tuple[str, str, str]:
    """Return (url to connect to, Host header, SNI host) or raise DownloadError.

    A check ahead of time (for messages at save time); fetch() and provider
    calls are checked again by the guarded connection itself."""
    allowed = allowed_private if allowed_private is not None else settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS
    _parsed(url)
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


def _refuse_unparsable_redirect(response: httpx.Response) -> None:
    """httpx reads a redirect's Location (for response.next_request) before
    fetch() does, and one it cannot parse would be an httpx error (a
    transient one to fetch): refuse it here as fetch() refuses it, final."""
    location = response.headers.get("location") if response.is_redirect else None
    if location:
        try:
            target = urljoin(str(response.request.url), location)
        except ValueError:
            raise DownloadError("Refused a redirect to a URL that cannot be parsed.") from None
        _parsed(target)


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
        client.event_hooks = {"response": [_refuse_unparsable_redirect]}
    try:
        for _ in range(MAX_REDIRECTS + 1):
            target = _parsed(url)
            try:
                with client.stream("GET", target, headers={"Accept": "image/*"}) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise DownloadError("Redirect without a Location.")
                        try:
                            url = urljoin(url, location)
                        except ValueError:
                            raise DownloadError("Refused a redirect to a URL that cannot be parsed.") from None
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
            except (httpx.InvalidURL, httpx.UnsupportedProtocol):  # checked above; never worth a retry
                raise DownloadError("Refused a URL that cannot be parsed.") from None
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
