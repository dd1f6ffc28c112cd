"""Address policy for outbound HTTP: the special-purpose ranges that are
never public (is_public), the private host:ports allowed by name (settings),
one checked lookup of a host (resolve_checked, EgressRefused), and the strict
reading of an outside URL's host and port (parse_host_port).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Iterable
from urllib.parse import urlsplit

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


# --- private host:ports allowed by name, and one checked lookup --------------------------

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


# --- an outside URL's host and port ----------------------------------------------------
# A result URL's authority is read here, strictly, before anything looks up
# or connects: urlsplit, httpx, idna and getaddrinfo each read odd hosts
# their own way (012.0.0.1 is 10.0.0.1 to getaddrinfo and invalid to httpx;
# full-width digits are 127.0.0.1 after NFKC), and what one of them cannot
# parse must end the download at once, not escape as an internal error.
_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)\Z")  # WHATWG: such a host "ends in a number"
_PORT = re.compile(r"[0-9]{1,5}\Z")


def parse_host_port(netloc: str, default_port: int) -> tuple[str, int]:
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
