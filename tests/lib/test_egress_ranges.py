"""'Public' means public (RELIABILITY 6): every special-purpose range of the
IANA IPv4 and IPv6 registries, and IPv6 forms embedding a non-public IPv4
address, is refused; ordinary public addresses pass."""

import pytest

from playground.lib.net.addresses import is_public
from playground.lib.net.download import DownloadError, check_url

NOT_PUBLIC = [
    # IPv4 special-purpose registry
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.1.2.3",
    "169.254.169.254", "172.16.0.1", "172.31.255.254", "192.0.0.1", "192.0.0.8", "192.0.0.9", "192.0.0.10",
    "192.0.0.170", "192.0.2.1", "192.31.196.1", "192.52.193.1", "192.88.99.1", "192.168.1.1", "192.175.48.1",
    "198.18.0.1", "198.19.255.254", "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255",
    # IPv6 special-purpose registry and what is not global unicast
    "::", "::1", "::7f00:1", "::808:808",  # IPv4-compatible (deprecated), even of a public address
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:8.8.8.8",  # IPv4-mapped
    "::ffff:0:808:808",  # IPv4-translated
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c000:208",  # NAT64 of non-public IPv4
    "64:ff9b:1::1", "64:ff9b:1:abcd::808:808",  # local-use NAT64
    "100::1", "100:0:0:1::1",  # discard-only, dummy prefix
    "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:0:c000:0221::",  # Teredo embedding a documentation address
    "2001:1::1", "2001:2::1", "2001:3::1", "2001:4:112::1", "2001:10::1", "2001:20::1", "2001:30::1",
    "2001:db8::1", "2001:db8:ffff::1",  # documentation
    "2002:7f00:1::1", "2002:a00:1::1", "2002:c0a8:101::1", "2002:a9fe:a9fe::1",  # 6to4 of private IPv4
    "2620:4f:8000::1", "3fff::1", "5f00::1",
    "fc00::1", "fd00::1", "fe80::1", "febf::1", "fec0::1", "feff::1", "ff02::1", "ff0e::1",
    "4000::1", "e000::1",  # outside 2000::/3
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e",
          "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_special_purpose_addresses_are_not_public(address):
    assert not is_public(address)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(DownloadError, match="non-public"):
        check_url(f"http://{host}/x.png", allowed_private=[])


@pytest.mark.parametrize("address", PUBLIC)
def test_ordinary_public_addresses_are_public(address):
    assert is_public(address)


def test_a_scoped_link_local_address_is_not_public():
    assert not is_public("fe80::1%eth0")
