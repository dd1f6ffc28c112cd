"""The gallery's prompt search through its index (generations/search.py):
SQLite's FTS5 table kept in step by triggers, PostgreSQL's GIN index.

Both planned forms of a search (a few matches found by id, many walked
newest first) answer what the condition alone answers, inside the viewer's
visibility; the index follows every insert, prompt change and delete, and
is filled for rows that existed before it (migration 0011); typed quotes,
operators and symbols are text, never syntax."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
import pytest

from playground.generations import search
from playground.generations.models import Generation
from tests import factories

pytestmark = pytest.mark.django_db

SQLITE = connection.vendor == "sqlite"
HOSTILE = ['"', '""', "'", 'red"', '"red', "NEAR(red kite)", "red OR kite", "red AND", "NOT red", "*", "r*",
           "-red", "^red", "prompt:red", "col:red", "(", ")", "{red}", "\\", "%", "_", "50%", "a_b",
           "'; DROP TABLE core_generation; --", "été", "ÉTÉ", "日本語", "🦊", "red " * 60, "AND OR NOT", "+", ":"]


def job(team, user, prompt, **kw):
    return factories.job(team, user, "kie", "seedream-v4", prompt=prompt, **kw)


def found(user, team, text, *, few=None, monkeypatch=None):
    """(narrow, matching) of a search among what the user may see, as uuid sets."""
    if few is not None:
        monkeypatch.setattr(search, "FEW", few)
    qs = Generation.objects.visible_to(user, team)
    return ({g.uuid for g in search.narrow(qs, text)}, {g.uuid for g in search.matching(qs, text)})


def indexed_prompts() -> dict[int, str]:
    """SQLite: the search index's own copy of each prompt, by generation id."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rowid, prompt FROM {search.TABLE}")
        return dict(cursor.fetchall())


def test_the_index_follows_inserts_prompt_changes_and_deletes(team, user):
    kite = job(team, user, "A red kite over the dunes")
    whale = job(team, user, "a blue whale")
    assert found(user, team, "kite")[0] == {kite.uuid}
    # A new prompt (an update of params, as a save or a queryset update writes it).
    kite.params = {**kite.params, "prompt": "a green lantern"}
    kite.save()
    assert found(user, team, "kite")[0] == set()
    assert found(user, team, "lantern")[0] == {kite.uuid}
    Generation.objects.filter(pk=whale.pk).update(params={"prompt": "a whale of a time"})
    assert found(user, team, "blue")[0] == set()
    assert found(user, team, "time")[0] == {whale.uuid}
    # A status change (no params written) leaves the index alone.
    Generation.objects.filter(pk=whale.pk).update(status=Generation.FAILED)
    assert found(user, team, "whale")[0] == {whale.uuid}
    if SQLITE:
        assert indexed_prompts() == {kite.pk: "a green lantern", whale.pk: "a whale of a time"}
    whale.delete()
    assert found(user, team, "whale")[0] == set()
    if SQLITE:
        assert indexed_prompts() == {kite.pk: "a green lantern"}


def test_a_prompt_less_generation_is_indexed_as_empty(team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="an owl")
    Generation.objects.filter(pk=gen.pk).update(params={"seed": 3})
    assert found(user, team, "owl")[0] == set()
    if SQLITE:
        assert indexed_prompts() == {gen.pk: None}


@pytest.mark.parametrize("few", [0, 2, 1000])
def test_few_or_many_matches_answer_the_same_inside_the_viewers_walls(team, user, bob, other_user, other_team,
                                                                      monkeypatch, few):
    mine = [job(team, user, f"a red kite number {i}") for i in range(4)]
    shared = job(team, bob, "Red kites racing")
    job(team, bob, "a red kite kept private", visibility=Generation.PRIVATE)
    job(other_team, other_user, "a red kite of another team")
    job(team, user, "a blue kite")
    narrow, matching = found(user, team, "red KITE", few=few, monkeypatch=monkeypatch)
    assert narrow == matching == {g.uuid for g in mine} | {shared.uuid}
    # Short words (shorter than the trigram index can look up) still count.
    narrow, matching = found(user, team, "red kite 3", few=few, monkeypatch=monkeypatch)
    assert narrow == matching == {mine[3].uuid}
    narrow, matching = found(user, team, "no such thing", few=few, monkeypatch=monkeypatch)
    assert narrow == matching == set()


def test_every_word_must_be_in_the_prompt_in_any_case(team, user):
    boats = job(team, user, "Red sailing boats in a calm harbour at dawn")
    boat = job(team, user, "a red boat on a lake")
    assert found(user, team, "red sailing")[0] == {boats.uuid}
    assert found(user, team, "RED")[0] == {boats.uuid, boat.uuid}
    assert found(user, team, "harbour dawn boats")[0] == {boats.uuid}
    assert found(user, team, "red lighthouse")[0] == set()


@pytest.mark.skipif(not SQLITE, reason="PostgreSQL matches English words (and their forms), not substrings")
def test_sqlite_matches_a_word_anywhere_in_the_prompt_as_it_always_did(team, user):
    boats = job(team, user, "Red sailing boats, ÉTÉ 2026, 50% off")
    assert found(user, team, "ail")[0] == {boats.uuid}  # three characters: from the index
    assert found(user, team, "ai")[0] == {boats.uuid}  # two: matched as before, without it
    assert found(user, team, "été")[0] == {boats.uuid}  # case folded beyond ASCII
    assert found(user, team, "50%")[0] == {boats.uuid}
    assert found(user, team, "boats,")[0] == {boats.uuid}


@pytest.mark.parametrize("text", HOSTILE)
def test_typed_operators_quotes_and_symbols_are_text(client_in, team, user, text):
    job(team, user, "a red kite, 50% off: prompt:red (col:red)")
    narrow, matching = found(user, team, text)
    assert narrow == matching
    response = client_in.get("/generations/", {"scope": "team", "q": text[:200]})
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_indexes_the_generations_that_exist_before_it(team, user):
    old = job(team, user, "an ancient lighthouse")
    executor = MigrationExecutor(connection)
    executor.migrate([("generations", "0010_queue_on_the_row")])
    if SQLITE:
        with connection.cursor() as cursor:
            assert search.TABLE not in connection.introspection.table_names(cursor)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert found(user, team, "lighthouse")[0] == {old.uuid}
    new = job(team, user, "a new lighthouse")
    assert found(user, team, "lighthouse")[0] == {old.uuid, new.uuid}
