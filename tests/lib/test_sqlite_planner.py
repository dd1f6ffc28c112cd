"""The SQLite backend keeps the planner's statistics current and its
triggers through Django's table remakes (playground/lib/sqlite/planner.py,
schema.py):

- migrate that applied migrations ends with one ANALYZE (post_migrate);
  flush, and a migrate with nothing to do, do not;
- a connection that used a table with no statistics analyzes it as it closes
  (PRAGMA optimize), never inside a transaction;
- a migration that remakes core_generation (a field with a default added,
  for one) keeps the prompt search index's triggers, so search still sees
  new generations."""

from __future__ import annotations

from django.apps import apps
from django.core.management import call_command
from django.db import connection, models
import pytest

from playground.generations import search
from playground.generations.models import Generation
from playground.lib.sqlite import planner
from tests import factories

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own statistics and schema editor"),
    pytest.mark.django_db(transaction=True),
]

TABLE = Generation._meta.db_table


def statistics(table: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = %s", [table])
        return cursor.fetchall()


def forget(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM sqlite_stat1 WHERE tbl = %s", [table])
        cursor.execute("ANALYZE sqlite_schema")


def jobs(team, user, count=3):
    return [factories.job(team, user, "kie", "seedream-v4", prompt=f"a paper crane {i}") for i in range(count)]


def test_migrate_ends_with_analyze_and_flush_does_not(team, user):
    jobs(team, user)
    forget(TABLE)
    call_command("migrate", "generations", "0010", verbosity=0)
    call_command("migrate", verbosity=0)
    stats = dict(statistics(TABLE))
    assert stats["gen_team_recent"].startswith("3 ")  # three rows, from the ANALYZE after migrate
    forget(TABLE)
    call_command("migrate", verbosity=0)  # nothing to apply
    assert statistics(TABLE) == []


def test_the_receiver_acts_once_per_migrate_and_only_with_a_plan(team, user):
    jobs(team, user)
    forget(TABLE)
    configs = [c for c in apps.get_app_configs() if c.models_module is not None]
    first, last = configs[0], configs[-1]
    planner.after_migrate(first, app_config=first, using="default", plan=[("x", False)])
    planner.after_migrate(last, app_config=last, using="default")  # flush: no plan
    planner.after_migrate(last, app_config=last, using="default", plan=[])
    assert statistics(TABLE) == []
    planner.after_migrate(last, app_config=last, using="default", plan=[("x", False)])
    assert statistics(TABLE)


def test_a_closing_connection_analyzes_the_tables_it_used_that_have_no_statistics(team, user):
    jobs(team, user)
    connection.close()
    forget(TABLE)
    connection.close()  # this connection did not read the generations: nothing to analyze
    assert statistics(TABLE) == []
    assert Generation.objects.filter(team=team).count() == 3
    connection.close()  # PRAGMA optimize
    assert dict(statistics(TABLE))["gen_team_recent"].startswith("3 ")


def test_a_table_remake_keeps_the_search_triggers(team, user):
    def triggers():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
            return {name for (name,) in cursor.fetchall()}

    before = triggers()
    assert before == {f"{search.TABLE}_insert", f"{search.TABLE}_update", f"{search.TABLE}_delete"}
    old = jobs(team, user, 1)[0]
    flag = models.BooleanField(null=True, default=False)  # a default: Django remakes the table
    flag.set_attributes_from_name("remade_flag")
    with connection.schema_editor() as editor:
        editor.add_field(Generation, flag)
    try:
        assert triggers() == before
        new = factories.job(team, user, "kie", "seedream-v4", prompt="a paper boat")
        qs = Generation.objects.filter(team=team)
        assert set(search.matching(qs, "paper").values_list("pk", flat=True)) == {old.pk, new.pk}
        Generation.objects.filter(pk=old.pk).update(params={"prompt": "a tin soldier"})
        assert list(search.matching(qs, "soldier").values_list("pk", flat=True)) == [old.pk]
    finally:
        with connection.schema_editor() as editor:
            editor.remove_field(Generation, flag)
    assert triggers() == before


def test_an_empty_partial_index_does_not_make_every_close_analyze_again(team, user):
    jobs(team, user)  # queued: gen_due_active has entries, gen_pending_claim none
    planner.analyze(connection)
    assert dict(statistics(TABLE))["gen_pending_claim"] == "1 1"
    connection.close()
    assert Generation.objects.filter(team=team).exclude(claimed_job_id="").count() == 0
    # What PRAGMA optimize would do as this connection closes: nothing (it
    # would ANALYZE the generations again at every close otherwise).
    assert connection.connection.execute("PRAGMA optimize = 0x03").fetchall() == []
