"""One big team for every plan test of this folder, built once in the test
database (tests/plans/data.py), with planner statistics gathered as the app
gathers them; removed at the end, with the statistics of the emptied tables."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from playground.lib.sqlite import planner
from tests.plans import data


def analyze():
    """Statistics as the app has them: on SQLite the ANALYZE it runs after
    migrations (the same as PRAGMA optimize runs on a connection once tables
    have grown); on PostgreSQL the ANALYZE autovacuum runs."""
    if connection.vendor == "sqlite":
        planner.analyze(connection)
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


@pytest.fixture(scope="package")
def big(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        started = time.monotonic()
        team = data.build()
        analyze()
        print(f"\nbig team: {team.size:,} generations built and analyzed in {time.monotonic() - started:.1f} s")
        yield team
        data.remove(team)
        analyze()


@pytest.fixture
def owner_client(client, big):
    client.force_login(big.owner)
    return client
