"""The web process keeps its database connections (issue 26): its pages run
on WEB_THREADS long-lived threads (playground/asgi.py), so with CONN_MAX_AGE
a request reuses a connection instead of opening one, as under WSGI. On
PostgreSQL, where opening one starts a server process, it is counted."""

import http.client

from django.db import connection
import pytest

from playground.accounts.models import ApiToken

from tests.api.served import served_web


def backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return {row[0] for row in cursor.fetchall()}


def backends_seen(port: int, secret: str, requests: int = 30) -> set[int]:
    """The server processes of connections to the test database, looked at
    after each of `requests` API calls that read it."""
    seen = set()
    for _ in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {secret}"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
        finally:
            conn.close()
        seen |= backends()
    return seen


def test_pages_reuse_their_database_connection(transactional_db, tmp_path, user, team):
    """30 requests, one after another, are served by at most one server
    process a thread (with CONN_MAX_AGE=0, a thread per request, 10 of the
    30 were still to be seen exiting)."""
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL server processes")
    secret = ApiToken.issue(user, team, "script")[1]
    others = backends()  # not the web process's (earlier tests' threads)
    with served_web(tmp_path, CONN_MAX_AGE="60", WEB_THREADS="4") as (host, port, _log):
        seen = backends_seen(port, secret) - others
    assert 1 <= len(seen) <= 4
