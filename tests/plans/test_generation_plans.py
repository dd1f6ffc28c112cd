"""The generations pages' hot queries at 100,000 generations in one team
(tests/plans/data.py), each read from the database's own plan (SQLite's
EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN (FORMAT JSON)): each one reads the
intended index, and none walks the generations table (issue 26).

The job-card poll, the gallery's first page and a page deep in the keyset,
the text search (no match, a rare word, a common one), and a library
version's runs. The queries are the pages' own, caught with their
parameters as the test client gets the page."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

from playground.generations import gallery_filters, polling, search
from playground.generations.models import Generation
from tests.plans import data, explain
from tests.plans.explain import plans

pytestmark = pytest.mark.django_db

GEN = Generation._meta.db_table
SQLITE = connection.vendor == "sqlite"


def reading(found, table=GEN):
    return explain.reading(found, table)


def indexes_read(found, table=GEN) -> set[str]:
    return explain.indexes_read(found, table)


def assert_never_walks(found, table=GEN):
    explain.assert_never_walks(found, table)


def by_id(step) -> bool:
    """A read of single rows by primary key (SQLite: the rowid, also as the
    last column of a team index it seeks to)."""
    if SQLITE:
        return step.index == "rowid" or "rowid=?" in step.text
    return step.index == f"{GEN}_pkey"


@contextmanager
def no_statistics():
    """SQLite as a database that was never analyzed (sqlite_stat1 emptied and
    reloaded), put back afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tbl, idx, stat FROM sqlite_stat1")
        kept = cursor.fetchall()
        cursor.execute("DELETE FROM sqlite_stat1")
        cursor.execute("ANALYZE sqlite_schema")  # the planner reloads the (now empty) statistics
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (%s, %s, %s)", kept)
            cursor.execute("ANALYZE sqlite_schema")


def poll_url(big, cards=12, stale=False):
    rows = list(Generation.objects.filter(team=big.team, owner=big.owner).order_by("-id")
                .values_list("uuid", "updated_at", "created_at")[:cards])
    shown = "&".join(f"c={ref}:{polling.stamp(updated) + (1 if stale else 0)}" for ref, updated, _ in rows)
    return f"/jobs/poll?{shown}&since={polling.stamp(rows[-1][2])}"


def versions_query(found):
    [(q, steps)] = [(q, steps) for q, steps in found if '"uuid" IN' in q.sql and q.sql.count("SELECT") == 2]
    return q, steps


def test_the_poll_reads_cards_by_uuid_and_new_jobs_by_the_owners_index(owner_client, big):
    uuid_index = explain.index_on(GEN, "uuid")
    found = plans(owner_client, poll_url(big), status=(204, 286))
    q, steps = versions_query(found)
    assert explain.indexes(GEN)  # the helper reads this database's own names
    assert {s.index for s in steps} == {uuid_index, "gen_team_owner_recent"}, explain.describe(steps)
    assert_never_walks(found)


@pytest.mark.skipif(not SQLITE, reason="SQLite plans without statistics from fixed guesses; PostgreSQL always has some")
def test_the_poll_plan_is_right_before_any_statistics_exist(owner_client, big):
    uuid_index = explain.index_on(GEN, "uuid")
    with no_statistics():
        found = plans(owner_client, poll_url(big), status=(204, 286))
        _, steps = versions_query(found)
        assert {s.index for s in steps} == {uuid_index, "gen_team_owner_recent"}, explain.describe(steps)
        # Changed cards are read again by id, never by walking the team.
        changed = plans(owner_client, poll_url(big, stale=True))
        cards = [steps for q, steps in reading(changed) if '"core_generation"."id" IN' in q.sql]
        assert cards and all(by_id(s) for steps in cards for s in explain.reads(steps, GEN)), cards
        assert_never_walks(changed)


def test_changed_cards_are_read_again_by_id(owner_client, big):
    found = plans(owner_client, poll_url(big, stale=True))
    cards = [steps for q, steps in reading(found) if '"core_generation"."id" IN' in q.sql]
    assert cards and all(by_id(s) for steps in cards for s in explain.reads(steps, GEN)), cards
    assert_never_walks(found)


def test_the_visibility_rule_the_poll_restates_reads_the_uuid_index(big):
    """VisibleQuerySet.visible_to, as the ORM writes it, with the statistics
    the app keeps (polling._versions says the same in plain SQL)."""
    ids = list(Generation.objects.filter(team=big.team).order_by("-id").values_list("uuid", flat=True)[:30])
    qs = Generation.objects.visible_to(big.owner, big.team).filter(uuid__in=ids).values_list("uuid", "updated_at")
    sql, params = qs.query.sql_with_params()
    steps = explain.plan(sql, params)
    assert {s.index for s in steps} == {explain.index_on(GEN, "uuid")}, explain.describe(steps)


def gallery_indexes(scope: str) -> set[str]:
    if scope == "mine":
        return {"gen_team_owner_recent"}
    # PostgreSQL may walk created_at's own index when the team is (as here)
    # nearly all of the table: the same order, the same few rows.
    return {"gen_team_recent"} if SQLITE else {"gen_team_recent", explain.index_on(GEN, "created_at")}


@pytest.mark.parametrize("scope", ["team", "mine"])
def test_the_gallerys_first_page_and_a_deep_page_walk_the_teams_newest_first_index(owner_client, big, scope):
    first = plans(owner_client, f"/generations/?scope={scope}")
    middle = Generation.objects.visible_to(big.owner, big.team).order_by("-created_at", "-id")[big.size // 2]
    deep = plans(owner_client, f"/generations/?scope={scope}&after={gallery_filters.cursor_of(middle)}")
    for found in (first, deep):
        assert indexes_read(found) <= gallery_indexes(scope), [explain.describe(s) for _, s in reading(found)]
        assert_never_walks(found)


def search_plans(client, words: str, scope="team"):
    return plans(client, f"/generations/?scope={scope}&q={words}")


def search_index_read(found) -> bool:
    if SQLITE:
        return bool(reading(found, search.TABLE))
    return "core_generation_prompt_fts" in indexes_read(found)


@pytest.mark.parametrize("scope", ["team", "mine"])
def test_a_search_with_no_match_is_one_lookup_in_the_search_index(owner_client, big, scope):
    found = search_plans(owner_client, data.ABSENT_WORD, scope)
    assert search_index_read(found)
    assert_never_walks(found)
    # Nothing found, so nothing else is read: on SQLite the search index
    # alone; on PostgreSQL its GIN index over the generations table.
    readers = reading(found)
    if SQLITE:
        assert readers == [], readers
    else:
        [(_, steps)] = readers
        assert {s.index for s in explain.reads(steps, GEN)} == {"core_generation_prompt_fts"}, \
            explain.describe(steps)


def test_a_rare_word_is_found_by_the_search_index_and_its_rows_read_by_id(owner_client, big):
    response = owner_client.get(f"/generations/?scope=team&q={data.RARE_WORD}")
    assert response.content.count(b'data-testid="card"') == 10  # all of them, at 100,000
    found = search_plans(owner_client, data.RARE_WORD)
    assert search_index_read(found)
    pages = [steps for q, steps in reading(found) if "ORDER BY" in q.sql]
    assert pages and all(by_id(s) for steps in pages for s in explain.reads(steps, GEN)), pages
    assert_never_walks(found)


def test_a_few_hundred_matches_are_read_by_id_and_sorted(owner_client, big):
    found = search_plans(owner_client, "red+kite")  # about 400 of 100,000
    pages = [steps for q, steps in reading(found) if "ORDER BY" in q.sql]
    assert search_index_read(found) and pages
    if SQLITE:  # PostgreSQL may as well walk the team newest first, filtering by id
        assert all(by_id(s) for steps in pages for s in explain.reads(steps, GEN)), pages
    assert_never_walks(found)


def test_a_common_word_walks_the_teams_index_and_checks_each_row_against_the_matches(owner_client, big):
    found = search_plans(owner_client, "red")  # one prompt in 13: more than search.FEW
    [page] = [steps for q, steps in reading(found) if "ORDER BY" in q.sql]
    assert {s.index for s in explain.reads(page, GEN)} <= gallery_indexes("team"), explain.describe(page)
    assert not any(s.full for s in explain.reads(page, GEN)), explain.describe(page)
    if SQLITE:
        assert any(s.relation == search.TABLE for s in page), explain.describe(page)
    # The search index's own look (at most FEW + 1 ids) may stop early on
    # PostgreSQL: a Seq Scan under its LIMIT, never a full one.
    for q, steps in reading(found):
        assert all(not s.full or s.limited for s in explain.reads(steps, GEN)), explain.describe(steps)


def test_typed_operators_and_quotes_are_searched_as_text(owner_client, big):
    for words in ('%22red%27+%26+%7C+!kite', 'NEAR%28red+kite%29', 'red*+OR+kite', '%22%22%22', '-red+%5E'):
        found = search_plans(owner_client, words)
        assert_never_walks(found)


def test_a_library_versions_runs_are_read_by_their_version_index(owner_client, big):
    version = big.versions[0]
    found = plans(owner_client, f"/library/v/{version.uuid}/")
    runs = reading(found)
    assert runs
    wanted = {explain.index_on(GEN, "prompt_version_uuid"), "rowid", f"{GEN}_pkey"}
    for q, steps in runs:
        assert {s.index for s in explain.reads(steps, GEN)} <= wanted, explain.describe(steps)
    assert_never_walks(found)
