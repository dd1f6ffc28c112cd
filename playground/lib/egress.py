"""Outbound HTTP that cannot be turned inward (RELIABILITY 6), and keys that
do not come back out of a provider's answer (RELIABILITY 7).

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
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings


class EgressRefused(Exception):
    """A connection we refuse to make (before any byte is sent)."""

    def __init__(self, message: str, *, unresolved: bool = False):
        super().__init__(message)
        self.unresolved = unresolved


# --- what "public" means ---------------------------------------------------------

# The IANA IPv4 Special-Purpose Address Registry, every entry (globally
# reachable or not: none of them is an API server's address), plus multicast.
IPV4_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",          # "this network"
    "10.0.0.0/8",         # private
    "100.64.0.0/10",      # shared address space (carrier-grade NAT)
    "127.0.0.0/8",        # loopback
    "169.254.0.0/16",     # link local (cloud metadata)
    "172.16.0.0/12",      # private
    "192.0.0.0/24",       # IETF protocol assignments (incl. 192.0.0.8, .9, .10, .170, .171)
    "192.0.2.0/24",       # documentation TEST-NET-1
    "192.31.196.0/24",    # AS112-v4
    "192.52.193.0/24",    # AMT
    "192.88.99.0/24",     # deprecated 6to4 relay anycast
    "192.168.0.0/16",     # private
    "192.175.48.0/24",    # direct delegation AS112
    "198.18.0.0/15",      # benchmarking
    "198.51.100.0/24",    # documentation TEST-NET-2
    "203.0.113.0/24",     # documentation TEST-NET-3
    "224.0.0.0/4",        # multicast
    "240.0.0.0/4",        # reserved (incl. 255.255.255.255 broadcast)
))

# The IANA IPv6 Special-Purpose Address Registry, every entry, plus what lies
# outside global unicast. NAT64 64:ff9b::/96 and 6to4 2002::/16 are judged
# by the IPv4 address they embed (below), so they are not listed here.
IPV6_SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "::/96",              # unspecified, loopback, deprecated IPv4-compatible
    "::ffff:0:0/96",      # IPv4-mapped
    "64:ff9b:1::/48",     # local-use IPv4/IPv6 translation
    "100::/64",           # discard-only
    "100:0:0:1::/64",     # dummy IPv6 prefix
    "2001::/23",          # IETF protocol assignments (Teredo 2001::/32, benchmarking, ORCHID, AMT, ...)
    "2001:db8::/32",      # documentation
    "2620:4f:8000::/48",  # direct delegation AS112
    "3fff::/20",          # documentation
    "5f00::/16",          # segment routing (SRv6) SIDs
    "fc00::/7",           # unique local
    "fe80::/10",          # link local
    "fec0::/10",          # deprecated site local
    "ff00::/8",           # multicast
))
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIXTOFOUR = ipaddress.ip_network("2002::/16")


def is_public(ip) -> bool:
    """True only for an address that is neither special-purpose itself nor
    an IPv6 form embedding a special-purpose IPv4 address."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in net for net in IPV4_SPECIAL) and ip.is_global
    if ip in NAT64:
        return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in SIXTOFOUR:
        return is_public(ip.sixtofour)
    if ip not in GLOBAL_UNICAST_V6 or any(ip in net for net in IPV6_SPECIAL):
        return False
    return ip.is_global


# --- the guarded connection ------------------------------------------------------------

def _normalise_allowed(entries: Iterable[str]) -> set[str]:
    return {e.strip().lower() for e in entries if e and e.strip()}


def host_port_allowed(host: str, port: int, allowed: Iterable[str]) -> bool:
    host = host.lower().strip("[]")
    allowed = _normalise_allowed(allowed)
    return f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed


def resolve_checked(host: str, port: int, allowed: Iterable[str]) -> list[tuple]:
    """One lookup of host; every address checked. Returns getaddrinfo
    entries (family, type, proto, canonname, sockaddr) to connect to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise EgressRefused(f"Cannot resolve host {host!r}.", unresolved=True) from e
    if not infos:
        raise EgressRefused(f"Host {host!r} has no address.", unresolved=True)
    if not host_port_allowed(host, port, allowed):
        for info in infos:
            addr = info[4][0]
            try:
                public = is_public(addr)
            except ValueError:
                public = False
            if not public:
                raise EgressRefused(f"Refused {host}: it resolves to a non-public address.")
    seen, out = set(), []
    for info in infos:
        if info[4] not in seen:
            seen.add(info[4])
            out.append(info)
    return out


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


def download_allowed() -> list[str]:
    return list(settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS)


def sandbox_host_port() -> str | None:
    parts = urlsplit(settings.SANDBOX_URL)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return f"{parts.hostname}:{port}" if parts.hostname else None


def provider_allowed() -> list[str]:
    """Private host:ports a team's base URL may reach: the sandbox only."""
    sandbox = sandbox_host_port()
    return download_allowed() + ([sandbox] if sandbox else [])


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


# --- keys out of provider text ------------------------------------------------------------

KEY_REMOVED = "[key removed]"
PROVIDER_MESSAGE_MAX = 500
_MIN_RUN = 8  # this many of the key's characters in a row are taken for the key
_MAX_GAP = 3  # separators allowed between two of them ("ab-cd", "a b", "a. b")


def scrub(text: str, key: str) -> str:
    """text without the key in any spelling a provider may echo: any case,
    separators inserted, or a part of it (a run of at least 8 of its
    characters, compared without case and separators)."""
    if not text or not key:
        return text
    norm_key = "".join(c for c in key.lower() if c.isalnum())
    if len(norm_key) < 4:
        return re.sub(re.escape(key), KEY_REMOVED, text, flags=re.IGNORECASE) if len(key) >= 4 else text
    run = min(_MIN_RUN, len(norm_key))
    grams = {norm_key[i:i + run] for i in range(len(norm_key) - run + 1)}
    # The text's letters and digits, lower-cased, with where each came from;
    # a segment breaks where more than _MAX_GAP other characters come between.
    segments, current, last = [], [], None
    for i, c in enumerate(text):
        if not c.isalnum():
            continue
        if last is not None and i - last - 1 > _MAX_GAP:
            segments.append(current)
            current = []
        current.append((c.lower(), i))
        last = i
    if current:
        segments.append(current)
    spans = []
    for seg in segments:
        s = "".join(c for c, _ in seg)
        i = 0
        while i <= len(s) - run:
            if s[i:i + run] in grams:
                j = i + run
                while j < len(s) and s[i:j + 1] in norm_key:
                    j += 1
                spans.append((seg[i][1], seg[j - 1][1] + 1))
                i = j
            else:
                i += 1
    if not spans:
        # Case-insensitive exact match still applies to keys of odd shapes.
        return re.sub(re.escape(key), KEY_REMOVED, text, flags=re.IGNORECASE)
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(KEY_REMOVED)
        pos = end
    out.append(text[pos:])
    return re.sub(re.escape(key), KEY_REMOVED, "".join(out), flags=re.IGNORECASE)


def provider_text(text: str | None, key: str, limit: int = PROVIDER_MESSAGE_MAX) -> str | None:
    """Provider text fit to store or show: the key scrubbed, then capped."""
    if text is None:
        return None
    # Cut a huge body first (scrubbing is linear, but needn't read a
    # megabyte); what the cut leaves of a key at the end is cut below.
    text = scrub(str(text)[: limit * 4], key)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


# --- downloads of result images ---------------------------------------------
# Result URLs come from outside, so a download cannot be turned inward: only
# http(s); every resolved address must be public unless host:port is a
# configured sandbox host; the connection goes to the address that was checked
# (no DNS rebinding: see GuardedBackend above); every redirect is checked
# again; bytes and time are capped. The bytes are checked as an image by
# playground.lib.images.

MAX_REDIRECTS = 5


class DownloadError(Exception):
    def __init__(self, message: str, *, expired: bool = False, unresolved: bool = False, transient: bool = False):
        super().__init__(message)
        self.expired = expired
        self.unresolved = unresolved
        # A server error, a timeout or a dropped connection: worth trying again.
        self.transient = transient


_is_public = is_public  # the one definition of "public" lives in egress


# A result URL's authority is read here, strictly, before anything looks up
# or connects: urlsplit, httpx, idna and getaddrinfo each read odd hosts
# their own way (012.0.0.1 is 10.0.0.1 to getaddrinfo and invalid to httpx;
# full-width digits are 127.0.0.1 after NFKC), and what one of them cannot
# parse must end the download at once, not escape as an internal error.
_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)\Z")  # WHATWG: such a host "ends in a number"
_PORT = re.compile(r"[0-9]{1,5}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _host_port(netloc: str, default_port: int) -> tuple[str, int]:
    """host (lower case, IPv6 without brackets) and port of an authority
    without userinfo, or ValueError saying what is wrong with it. A host is
    a DNS name of ASCII letters, digits, "-" and "_", a dotted-quad IPv4
    address written plainly, or a bracketed IPv6 address without a zone."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError("an unclosed IPv6 bracket")
        literal, rest = netloc[1:end], netloc[end + 1:]
        if "%" in literal or not literal.isascii():
            raise ValueError("an IPv6 address with a zone or odd characters")
        try:
            host = ipaddress.IPv6Address(literal).compressed
        except ValueError:
            raise ValueError("an invalid IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError("characters after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = netloc.partition(":")
        port_text = port_text if colon else None
        if not host:
            raise ValueError("no host")
        if not host.isascii():
            raise ValueError("a host that is not plain ASCII")
        host = host.lower()
        name = host[:-1] if host.endswith(".") else host
        labels = name.split(".")
        if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
            raise ValueError("a host that is not a valid name")
        if _NUMERIC_LABEL.match(labels[-1]):
            try:
                plain = str(ipaddress.IPv4Address(host)) == host
            except ValueError:
                plain = False
            if not plain:
                raise ValueError("a number that is not a plain dotted IPv4 address (it resolves differently "
                                 "in different programs)")
    if port_text is None or port_text == "":
        return host, default_port
    if not _PORT.match(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError("an invalid port")
    return host, int(port_text)


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
        host, port = _host_port(parts.netloc, 443 if parts.scheme == "https" else 80)
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
