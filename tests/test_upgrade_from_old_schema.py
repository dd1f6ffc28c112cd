"""A database made before the split into apps (every model in the core app)
upgrades in place: the rows are read through the new apps' models, and a
task queued under the old import path still runs."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from playground.accounts.models import Membership, Team
from playground.generations.models import Generation
from playground.ledger.models import Entry

from tests.helpers import run_tasks

OLD_SCHEMA = ("core", "0007_pipeline_heartbeat_adoption_paid_no_image")
NEW_APPS = ("accounts", "generations", "ledger")


def migrate_back_to_old_schema():
    """core at 0007, the new apps unapplied; returns the historical models."""
    executor = MigrationExecutor(connection)
    executor.migrate([OLD_SCHEMA] + [(app, None) for app in NEW_APPS])
    return MigrationExecutor(connection).loader.project_state(OLD_SCHEMA).apps


def migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_split_is_read_through_the_new_apps(sandbox):
    try:
        old = migrate_back_to_old_schema()
        # The schema as it was: the models are core's.
        assert old.get_model("core", "Generation")._meta.db_table == "core_generation"
        with pytest.raises(LookupError):
            old.get_model("generations", "Generation")
        User = old.get_model("auth", "User")
        user = User.objects.create(username="olduser")
        team = old.get_model("core", "Team").objects.create(name="Old team")
        old.get_model("core", "Membership").objects.create(team=team, user=user, role="owner")
        done = old.get_model("core", "Generation").objects.create(
            team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a quiet harbour at dawn"},
            status="succeeded", credits_used=Decimal("3.5"))
        old.get_model("core", "Charge").objects.create(
            team=team, user=user, generation=done, provider="kie", model="seedream-v4", credits=Decimal("3.5"),
            basis="reported", kind="image")
        waiting = old.get_model("core", "Generation").objects.create(
            team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a lighthouse on a cliff"})
    finally:
        migrate_to_latest()

    team = Team.objects.get(name="Old team")
    assert team.memberships.get().role == Membership.OWNER
    gen = Generation.objects.get(pk=done.pk)
    assert (gen.team, gen.prompt, gen.status) == (team, "a quiet harbour at dawn", Generation.SUCCEEDED)
    capture = Entry.objects.get(kind=Entry.CAPTURE)  # the old charge, kept as a capture
    assert (capture.generation, capture.amount, capture.basis) == (gen, Decimal("3.5"), Entry.REPORTED)
    assert capture.unit == "kie_credit" and Entry.objects.filter(generation=gen, kind=Entry.RESERVE).count() == 1

    # A task queued by the old code names playground.core.tasks: it still runs.
    from django_tasks_db.models import DBTaskResult

    from playground.generations.tasks import advance_generation

    row = advance_generation.enqueue(waiting.pk)
    DBTaskResult.objects.filter(id=row.id).update(task_path="playground.core.tasks.advance_generation")
    job = Generation.objects.get(pk=waiting.pk)
    run_tasks(until=job)
    assert job.status == Generation.SUCCEEDED, job.error_message
    assert job.images.count() == 1 and Entry.objects.filter(generation=job, kind=Entry.CAPTURE).count() == 1
    assert DBTaskResult.objects.get(id=row.id).status == "SUCCESSFUL"


def test_the_move_changes_no_table():
    """The new apps' first migrations and core's last only move models in
    Django's state: nothing runs on the database."""
    from django.db import migrations
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    moves = [loader.get_migration(app, "0001_initial") for app in NEW_APPS]
    moves.append(loader.get_migration("core", "0008_models_moved_to_apps"))
    for migration in moves:
        assert [type(op) for op in migration.operations] == [migrations.SeparateDatabaseAndState], migration
        assert migration.operations[0].database_operations == [], migration
        assert migration.operations[0].state_operations, migration
    assert ("core", OLD_SCHEMA[1]) in loader.get_migration("accounts", "0001_initial").dependencies
