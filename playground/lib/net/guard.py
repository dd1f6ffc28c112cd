"""The guarded connection (RELIABILITY 6): an httpx client whose every
connection is checked where it is made, the process's provider client, and
the checks of a team's base URL.

Every call to a URL that comes from outside (a team's base URL, a result
image URL) goes through a guarded connection: the host is resolved once, at
connect time; every address it resolves to must be public (or host:port is
exactly an allowed private host such as the sandbox); and the socket is
opened to one of those checked addresses, never to a second lookup. The URL
keeps its hostname, so the Host header and TLS SNI/certificate checks are
the usual ones. Like healthchecks' hc/lib/curl.py, the refusal happens where
the connection is made, so no check-then-connect gap exists.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
import os
import ssl
import threading
import time
from typing import Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from .addresses import EgressRefused, download_allowed, provider_allowed, resolve_checked


# --- the guarded connection ------------------------------------------------------------

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


class GuardedBackend(httpcore.SyncBackend):
    """An httpcore network backend that resolves once, checks every address
    and connects to a checked one. `allowed` returns the host:port entries
    that may be private (read at each connect, so settings changes apply).
    With a deadline (a monotonic time), connect, reads and writes stop there."""

    def __init__(self, allowed: Callable[[], Iterable[str]], deadline: float | None = None):
        self._allowed = allowed
        self._deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("download deadline reached")
            timeout = left if timeout is None else min(timeout, left)
        infos = resolve_checked(host, port, self._allowed())
        last: Exception | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            try:
                # The checked address itself (an IP literal): no second lookup.
                stream = super().connect_tcp(sockaddr[0], sockaddr[1], timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)
            except (httpcore.ConnectTimeout, httpcore.ConnectError) as e:
                last = e
                continue
            return stream if self._deadline is None else _DeadlineStream(stream, self._deadline)
        raise last or httpcore.ConnectError(f"Could not connect to {host}.")

    def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover - never for outside URLs
        raise EgressRefused("Refused a Unix socket connection.")


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process (building one costs ~20 ms)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing: a client shared by every team's jobs
    in a process never sends one team's provider cookie with another's
    request, nor an image server's back to it."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def plain_client(**options) -> httpx.Client:
    """An httpx.Client that keeps no cookies (no_cookies)."""
    return httpx.Client(cookies=no_cookies(), **options)


def guarded_client(allowed: Callable[[], Iterable[str]], *, deadline: float | None = None,
                   timeout: httpx.Timeout | float = 30.0) -> httpx.Client:
    """An httpx client whose every connection is guarded. No proxies from
    the environment (the guard would check the proxy, not the target), no
    redirects followed (the caller checks each one)."""
    client = plain_client(timeout=timeout, follow_redirects=False, trust_env=False, verify=ssl_context())
    client._transport._pool._network_backend = GuardedBackend(allowed, deadline)
    return client


_clients: dict[tuple, httpx.Client] = {}
_clients_lock = threading.Lock()


def provider_client() -> httpx.Client:
    """The process's one guarded client for calls to team-supplied base
    URLs (adapters pass their own timeouts per request)."""
    # Keyed by process id: a process forked after creating it (a preloaded
    # gunicorn, a worker pool) must never use its parent's sockets.
    key = ("provider", os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            _clients.clear()  # a parent's client, if any: not ours to use
            client = _clients[key] = guarded_client(provider_allowed)
            client.shared_by_adapters = True  # adapters pass their own timeouts
        return client


# --- team base URLs ----------------------------------------------------------------------

def _origin(parts) -> tuple[str, str, int] | None:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def is_sandbox_url(url: str) -> bool:
    """Scheme, host and port exactly the configured sandbox's, no userinfo."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return False
    origin = _origin(parts)
    return origin is not None and origin == _origin(urlsplit(settings.SANDBOX_URL))


def check_base_url_syntax(url: str) -> None:
    """What a base URL must look like, whatever it resolves to."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise EgressRefused("Only http and https base URLs are accepted.")
    if "@" in parts.netloc:
        raise EgressRefused("A base URL must not contain a user name or password (nothing before an @).")
    if not parts.hostname:
        raise EgressRefused("The base URL has no host.")
    if _origin(parts) is None:
        raise EgressRefused("The base URL has an invalid port.")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise EgressRefused("A base URL must not contain a query (?) or fragment (#).")
    if "\\" in url or any(ord(c) < 33 for c in url):
        raise EgressRefused("The base URL contains characters that are not allowed.")


def check_base_url(url: str) -> None:
    """Raise EgressRefused unless url is the sandbox or resolves only to
    public addresses. The connection is checked again when it is made."""
    check_base_url_syntax(url)
    if is_sandbox_url(url):
        return
    parts = urlsplit(url)
    port = _origin(parts)[2]
    resolve_checked(parts.hostname, port, download_allowed())
