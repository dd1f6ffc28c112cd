"""A database made before the split into apps (every model in the core app)
upgrades in place: the rows are read through the new apps' models. A job's
steps were task rows before the Generation row became their queue: the
upgrade (generations 0010) drops the old pipeline's queued task rows, under
the old import path too, and their jobs still finish, due by their own
due_at. A database made on Django 5.2 with the django-tasks backport,
django-template-partials and django-csp moves to Django 6.1 (django.tasks):
nothing to migrate, and its queued task rows still run."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from playground.accounts.models import Membership, Team
from playground.generations.models import Generation
from playground.generations.pipeline.queue import due_steps
from playground.ledger.models import Entry

from tests.helpers import run_side_tasks, run_tasks

OLD_SCHEMA = ("core", "0007_pipeline_heartbeat_adoption_paid_no_image")
NEW_APPS = ("accounts", "generations", "ledger")
BEFORE_THE_ROW_QUEUE = ("generations", "0009_pending_claim_index")


def migrate_back_to_old_schema():
    """core at 0007, the new apps unapplied; returns the historical models."""
    executor = MigrationExecutor(connection)
    executor.migrate([OLD_SCHEMA] + [(app, None) for app in NEW_APPS])
    return MigrationExecutor(connection).loader.project_state(OLD_SCHEMA).apps


def migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def migrate_to(node):
    MigrationExecutor(connection).migrate([node])


def queue_as_django_5_2(task_path, args, status="READY"):
    """A task row written as django-tasks-db 0.13 wrote it under the backport
    (column for column, taken from such a database). Returns its id."""
    row = {
        "id": uuid.uuid4(),
        "status": status,
        "enqueued_at": timezone.now(),
        "started_at": timezone.now() if status == "RUNNING" else None,
        "finished_at": None,
        "args_kwargs": {"args": args, "kwargs": {}},
        "priority": 50,
        "task_path": task_path,
        "worker_ids": ["old-worker"] if status == "RUNNING" else [],
        "queue_name": "default",
        "backend_name": "default",
        "run_after": datetime(9999, 1, 1, tzinfo=UTC),  # what the backend stores for "no run_after"
        "return_value": None,
        "exception_class_path": "",
        "traceback": "",
    }
    fields = [DBTaskResult._meta.get_field(name) for name in row]
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})",
            [f.get_db_prep_save(row[f.name], connection) for f in fields],
        )
    return row["id"]


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
        old_step = queue_as_django_5_2("playground.core.tasks.advance_generation", [waiting.pk])
    finally:
        migrate_to_latest()

    team = Team.objects.get(name="Old team")
    assert team.memberships.get().role == Membership.OWNER
    gen = Generation.objects.get(pk=done.pk)
    assert (gen.team, gen.prompt, gen.status) == (team, "a quiet harbour at dawn", Generation.SUCCEEDED)
    capture = Entry.objects.get(kind=Entry.CAPTURE)  # the old charge, kept as a capture
    assert (capture.generation, capture.amount, capture.basis) == (gen, Decimal("3.5"), Entry.REPORTED)
    assert capture.unit == "kie_credit" and Entry.objects.filter(generation=gen, kind=Entry.RESERVE).count() == 1

    # The step the old code had queued for it, under playground.core.tasks:
    # dropped by the upgrade; the job is due by its own row.
    assert not DBTaskResult.objects.filter(id=old_step).exists()
    job = Generation.objects.get(pk=waiting.pk)
    assert job.status == Generation.QUEUED and job.due_at <= timezone.now() and job.lease_until is None
    run_tasks(until=job)
    assert job.status == Generation.SUCCEEDED, job.error_message
    assert job.images.count() == 1 and Entry.objects.filter(generation=job, kind=Entry.CAPTURE).count() == 1
    assert not DBTaskResult.objects.exists()


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


# What a database made on Django 5.2.19 with django-tasks 0.12 (the backport),
# django-tasks-db 0.13, django-template-partials 25.3 and django-csp 4.0 has
# recorded as applied, app by app, besides the project's own apps (read from
# such a database's django_migrations). The backport, template-partials and
# django-csp have no models and no migrations: they recorded nothing.
APPLIED_ON_DJANGO_5_2 = {
    "contenttypes": "0002_remove_content_type_name",
    "auth": "0012_alter_user_first_name_max_length",
    "admin": "0003_logentry_add_action_flag_choices",
    "sessions": "0001_initial",
    "axes": "0010_accessattemptexpiration",
    "django_tasks_database": "0021_conditional_partial_index_ordering",
}


def test_what_django_5_2_and_the_backport_applied_is_in_the_migration_history():
    """So `migrate` on Django 6.1 finds such a database consistent and moves it
    forward. django-tasks-db's migrations (app label django_tasks_database)
    never depended on the backport's app."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    for app, name in APPLIED_ON_DJANGO_5_2.items():
        assert (app, name) in loader.graph.nodes, (app, name)
    for node in loader.graph.nodes:
        for dep_app, _ in loader.get_migration(*node).dependencies:
            assert dep_app not in ("django_tasks", "template_partials", "csp"), node
    # django-tasks-db's migration history is the same in both: nothing new to apply to its table.
    assert ("django_tasks_database", APPLIED_ON_DJANGO_5_2["django_tasks_database"]) in loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_old_pipelines_queued_task_rows_are_dropped_and_their_jobs_still_finish(sandbox, team, user):
    """A database whose workers stopped mid-way: the old pipeline's steps
    queued or running as task rows, under both import paths. The upgrade
    drops them (a step of the old code cannot run any more) and keeps the
    record of those that ended; every job is due by its own row and
    finishes once, charged once."""
    from tests import factories

    try:
        migrate_to(BEFORE_THE_ROW_QUEUE)
        queued = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse on a cliff")
        later = timezone.now() + timedelta(minutes=5)  # its next step was due later (a backoff)
        waiting = factories.job(team, user, "kie", "seedream-v4", prompt="a harbour at night")
        Generation.objects.filter(pk=waiting.pk).update(due_at=later)
        dropped = [
            queue_as_django_5_2("playground.generations.tasks.advance_generation", [queued.pk]),
            queue_as_django_5_2("playground.core.tasks.advance_generation", [waiting.pk]),
            queue_as_django_5_2("playground.generations.tasks.advance_generation", [waiting.pk], status="RUNNING"),
            queue_as_django_5_2("playground.generations.tasks.sweep_generations", []),
        ]
        ended = queue_as_django_5_2("playground.generations.tasks.advance_generation", [queued.pk],
                                    status="SUCCESSFUL")
    finally:
        migrate_to_latest()

    assert not DBTaskResult.objects.filter(id__in=dropped).exists()
    assert list(DBTaskResult.objects.values_list("id", flat=True)) == [ended]  # the record of a step that ended
    now = timezone.now()
    queued.refresh_from_db()
    waiting.refresh_from_db()
    assert queued.due_at <= now and waiting.due_at == later  # their places in the queue, as they were
    assert list(due_steps(now).filter(pk__in=[queued.pk, waiting.pk]).values_list("pk", flat=True)) == [queued.pk]
    for gen in (queued, waiting):
        run_tasks(until=gen)
        assert gen.status == Generation.SUCCEEDED, gen.error_message
        assert gen.images.count() == 1 and Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).count() == 1
    assert list(DBTaskResult.objects.values_list("id", flat=True)) == [ended]  # no task row for a step


@pytest.mark.django_db(transaction=True)
def test_a_task_row_queued_under_django_5_2_and_the_backport_still_runs(team, user):
    """The side task that is still a task (the thumbnails of old images),
    its row written as django-tasks-db 0.13 wrote it under the backport:
    Django 6.1's task framework and the database worker take it and run it."""
    from django.core.files.storage import default_storage
    from django.tasks import Task

    from tests import factories

    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a lighthouse on a cliff")
    img = gen.images.get()
    default_storage.delete(img.thumbnail.name)
    gen.images.update(thumbnail="")  # saved without its thumbnail
    row_id = queue_as_django_5_2("playground.generations.tasks.make_missing_thumbnails", [0])
    assert list(DBTaskResult.objects.values_list("id", flat=True)) == [row_id]

    run_side_tasks()
    img.refresh_from_db()
    assert img.thumbnail.name.endswith("-thumb.jpg") and default_storage.exists(img.thumbnail.name)
    row = DBTaskResult.objects.get(id=row_id)
    assert row.status == "SUCCESSFUL" and row.task.name == "make_missing_thumbnails"
    assert isinstance(row.task, Task)  # Django's own Task class, not the backport's
