"""The Credits, Library and Compare pages' queries at 100,000 generations in
one team (tests/plans/data.py: a reserve and a capture or release per
generation, over a year; 5,000 prompts and 5,000 comparisons), each read
from the database's own plan.

The Credits page reads the month's entries through the team's time index;
its lifetime totals read every entry of the team by definition (through a
team index on SQLite; on PostgreSQL a Seq Scan is the right plan when, as
here, the team's entries are most of the table). The list pages read their
team's rows through a team index, or walk their newest-first index when
the team is most of the table."""

from __future__ import annotations

import pytest
from django.db import connection

from playground.compare.models import Comparison
from playground.ledger.models import Entry
from playground.library.models import Prompt
from tests.plans import explain
from tests.plans.explain import plans

pytestmark = pytest.mark.django_db

LEDGER = Entry._meta.db_table
RANGE = f'"{LEDGER}"."created_at" >='


def ledger_reads(found):
    return [(q, explain.reads(steps, LEDGER)) for q, steps in explain.reading(found, LEDGER)]


def test_the_credits_page_reads_the_months_entries_through_the_teams_time_index(owner_client, big):
    found = plans(owner_client, "/credits/")
    reads = ledger_reads(found)
    in_range = [(q, steps) for q, steps in reads if RANGE in q.sql]
    assert len(in_range) >= 5  # breakdowns, members, reconciliation, per day, recent, costliest
    for q, steps in in_range:
        assert {s.index for s in steps} == {"ledger_team_time"}, explain.describe(steps)
        assert not any(s.full for s in steps), explain.describe(steps)
    lifetime = [(q, steps) for q, steps in reads if RANGE not in q.sql]
    assert lifetime
    for q, steps in lifetime:
        if connection.vendor == "sqlite":
            assert {s.index for s in steps} <= {"ledger_team_time", "ledger_team_user_time"}, explain.describe(steps)
            assert not any(s.full for s in steps), explain.describe(steps)
        else:
            assert explain.share(LEDGER, big.team) > 0.5  # a Seq Scan is the cheaper read of most of a table
    explain.assert_never_walks(found, "core_generation")


def narrowing(table: str, *columns: str) -> set[str]:
    """The table's indexes that begin with one of these columns."""
    return {name for name, cols in explain.indexes(table).items() if cols and cols[0] in columns}


def test_a_members_credits_page_reads_their_own_entries_through_a_team_or_user_index(client, big):
    member = big.members[3]
    client.force_login(member)
    found = plans(client, "/credits/")
    reads = ledger_reads(found)
    assert reads
    # Their own lines (team and user: SQLite takes ledger_team_user_time,
    # PostgreSQL may take the user's own index), and the team's total spend
    # in the range (team and time).
    for q, steps in reads:
        assert {s.index for s in steps} <= narrowing(LEDGER, "team_id", "user_id"), explain.describe(steps)
        assert not any(s.full for s in steps), explain.describe(steps)
    explain.assert_never_walks(found, "core_generation")


def walks_allowed(table: str, big) -> bool:
    """A walk of the table (or of its newest-first index, stopping at the
    page's LIMIT) is the right plan when the team is most of it."""
    return explain.share(table, big.team) > 0.5


def test_the_library_list_reads_the_teams_prompts_through_a_team_or_owner_index(owner_client, big):
    table = Prompt._meta.db_table
    assert explain.index_on(table, "team_id", "owner_id", "updated_at")  # the list's own index
    allowed = narrowing(table, "team_id", "owner_id")
    for url in ("/library/", "/library/?scope=mine", "/library/?q=kite"):
        found = plans(owner_client, url)
        assert explain.reading(found, table)
        for q, steps in explain.reading(found, table):
            for s in explain.reads(steps, table):
                assert s.index in allowed or (s.full and walks_allowed(table, big)), explain.describe(steps)


def test_the_compare_list_reads_the_teams_comparisons_through_an_index(owner_client, big):
    table = Comparison._meta.db_table
    team_index = explain.index_on(table, "team_id")
    newest = explain.index_on(table, "created")
    found = plans(owner_client, "/compare/")
    lists = explain.reading(found, table)
    assert lists
    for q, steps in lists:
        for s in explain.reads(steps, table):
            assert s.index in {team_index, newest, "rowid", f"{table}_pkey"} or walks_allowed(table, big), \
                explain.describe(steps)
