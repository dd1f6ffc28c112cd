"""Client addresses are not taken on trust (RELIABILITY 12): a forwarded
header counts only with BEHIND_PROXY and only when the connection comes from
one of TRUSTED_PROXIES; the login lock keys on the address that cannot be
forged.

Issue 23: the served web process (uvicorn's worker) took the client address
from X-Forwarded-For for every loopback connection, whatever BEHIND_PROXY
said, so 30 failed logins each with a different forged header never locked."""

from __future__ import annotations

import http.client
from http.cookies import SimpleCookie
import re
from urllib.parse import urlencode

from axes.models import AccessAttempt
from django.test import RequestFactory
import pytest

from playground.accounts.login_throttle import client_ip
from tests.api.served import served_web


def failed_logins_with_forged_addresses(host, port, count):
    """`count` failed logins (a different username each), each with a
    different forged X-Forwarded-For and Forwarded header, on one connection.
    Returns the statuses and the last page."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/login/")
    r = conn.getresponse()
    page = r.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    cookie = SimpleCookie(r.getheader("set-cookie"))["csrftoken"].value
    statuses = []
    for i in range(count):
        forged = f"203.0.113.{i + 1}"
        conn.request("POST", "/login/", urlencode({
            "csrfmiddlewaretoken": token, "username": f"guess{i}", "password": "wrong",
        }), {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie}",
             "X-Forwarded-For": forged, "Forwarded": f"for={forged}", "X-Real-IP": forged})
        r = conn.getresponse()
        page = r.read().decode()
        statuses.append(r.status)
    conn.close()
    return statuses, page


@pytest.mark.parametrize("proxy_env", [
    {"BEHIND_PROXY": "false"},
    # A proxy is in front, but not at this address: the header is still the client's to forge.
    {"BEHIND_PROXY": "true", "TRUSTED_PROXIES": "10.1.2.3"},
], ids=["no-proxy", "proxy-elsewhere"])
def test_forged_forwarded_headers_do_not_escape_the_address_lock(transactional_db, tmp_path, settings, proxy_env):
    assert settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS == 20
    with served_web(tmp_path, **proxy_env) as (host, port, log):
        statuses, page = failed_logins_with_forged_addresses(host, port, 30)
    assert statuses[:19] == [200] * 19, (statuses, log.read_text()[-2000:])
    assert statuses[19:] == [429] * 11, statuses
    assert "from your network address" in page
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_behind_our_proxy_each_client_has_its_own_address(transactional_db, tmp_path):
    """With the proxy on loopback and trusted, the entry it appended counts:
    30 different clients' single failures lock nobody."""
    with served_web(tmp_path, BEHIND_PROXY="true", TRUSTED_PROXIES="127.0.0.1") as (host, port, _):
        statuses, _ = failed_logins_with_forged_addresses(host, port, 30)
    assert statuses == [200] * 30
    assert AccessAttempt.objects.filter(ip_address__startswith="203.0.113.").count() == 30


PROXY, LAN = ["10.0.0.5"], ["10.0.0.5", "192.168.7.0/24"]
OUTER_AND_INNER = ["10.0.0.5", "10.0.0.6"]  # client -> 10.0.0.6 (outer) -> 10.0.0.5 (inner) -> app


@pytest.mark.parametrize("behind, trusted, count, remote, headers, expected", [
    # Without a proxy every forwarded header is ignored, even from a listed address.
    (False, ["127.0.0.1"], 1, "127.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, "127.0.0.1"),
    # From our proxy, the entry it appended (the right-most) counts.
    (True, LAN, 1, "10.0.0.5", {"HTTP_X_FORWARDED_FOR": "1.1.1.1, 198.51.100.7"}, "198.51.100.7"),
    (True, LAN, 1, "192.168.7.40", {"HTTP_X_FORWARDED_FOR": "198.51.100.8"}, "198.51.100.8"),
    (True, ["2001:db8::1"], 1, "2001:db8:0::1", {"HTTP_X_FORWARDED_FOR": "198.51.100.9"}, "198.51.100.9"),
    (True, PROXY, 1, "::ffff:10.0.0.5", {"HTTP_X_FORWARDED_FOR": "198.51.100.9"}, "198.51.100.9"),
    # A connection not from the proxy keeps its own address, whatever it sends.
    (True, PROXY, 1, "10.0.0.6", {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, "10.0.0.6"),
    (True, PROXY, 1, "127.0.0.1", {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, "127.0.0.1"),
    (True, PROXY, 1, "203.0.113.4", {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_FORWARDED": "for=198.51.100.7",
                                     "HTTP_X_REAL_IP": "198.51.100.7"}, "203.0.113.4"),
    # Two proxies: each step only from a trusted one. A forged "outer proxy"
    # entry that is not ours: the inner proxy's peer is the client.
    (True, OUTER_AND_INNER, 2, "10.0.0.5", {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7, 10.0.0.6"},
     "198.51.100.7"),
    (True, OUTER_AND_INNER, 2, "10.0.0.5", {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 6.6.6.6"}, "6.6.6.6"),
    # A malformed or missing entry: the connection's address.
    (True, PROXY, 1, "10.0.0.5", {"HTTP_X_FORWARDED_FOR": "not-an-address"}, "10.0.0.5"),
    (True, PROXY, 1, "10.0.0.5", {"HTTP_X_FORWARDED_FOR": ""}, "10.0.0.5"),
    (True, PROXY, 1, "10.0.0.5", {}, "10.0.0.5"),
])
def test_the_client_address_rule(settings, behind, trusted, count, remote, headers, expected):
    settings.BEHIND_PROXY, settings.TRUSTED_PROXIES, settings.PROXY_COUNT = behind, trusted, count
    assert client_ip(RequestFactory().post("/login/", REMOTE_ADDR=remote, **headers)) == expected
