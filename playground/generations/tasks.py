"""Background tasks, written against the Tasks API (django.tasks in Django 6,
the django-tasks backport here) so that the backend stays swappable.

Task arguments are ids only: never a key, never parameters."""

from datetime import timedelta
import logging

from django.conf import settings
from django.utils import timezone

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # the backport
    from django_tasks import task

log = logging.getLogger("playground.jobs")


@task(takes_context=True)
def advance_generation(context, generation_id: int) -> str:
    from . import jobs

    # The task result's id names this run in the job's lease.
    return jobs.advance(generation_id, holder=str(context.task_result.id))


@task(takes_context=True)
def adopt_claimed_job(context, generation_id: int) -> str:
    from . import jobs

    return jobs.adopt(generation_id, holder=str(context.task_result.id))


@task()
def sweep_generations() -> int:
    from . import jobs

    return jobs.sweep()


def queue_in_database(backend) -> bool:
    """Whether the backend keeps its queue in the app's database, so that a
    task enqueued inside a transaction commits (or rolls back) with it. A
    backend may say so itself (`enqueues_in_transaction`); the database
    backend does."""
    flag = getattr(backend, "enqueues_in_transaction", None)
    if flag is not None:
        return bool(flag)
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:
        return False
    return isinstance(backend, DatabaseBackend)


def enqueue_now_or_on_commit(task, *args):
    """Enqueue inside the current transaction when the queue is in the
    database; otherwise once the transaction commits (at once outside one)."""
    from django.db import transaction

    if queue_in_database(task.get_backend()):
        return task.enqueue(*args)
    transaction.on_commit(lambda: task.enqueue(*args))
    return None


# Tasks that hold a job's lease while they run: a row of theirs still
# RUNNING whose lease is gone belongs to a worker that died.
LEASED_TASKS = (advance_generation, adopt_claimed_job)


def jobs_with_ready_task(generation_ids) -> set[int]:
    """Of these jobs, those whose next step is already in the database
    queue (a READY advance_generation row that is due): late because the
    workers have a backlog, not lost, so the sweep leaves them alone. Other
    backends cannot be asked: an empty set (the sweep re-enqueues; the
    claim makes a duplicate harmless)."""
    ids = [int(i) for i in generation_ids]
    if not ids:
        return set()
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return set()
    if not isinstance(advance_generation.get_backend(), DatabaseBackend):
        return set()
    found = set()
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = DBTaskResult.objects.ready().filter(
            task_path=advance_generation.module_path,
            args_kwargs__args__0__in=part,
        ).values_list("args_kwargs", flat=True)
        for a in rows:
            args = (a or {}).get("args") or []
            if args and isinstance(args[0], int):
                found.add(args[0])
    return found


def reap_dead_task_rows() -> int:
    """Mark as failed the task rows a dead worker left RUNNING (django-tasks-db
    never does: they would stay RUNNING forever). A row is dead when it has
    run longer than a lease and no job is held under its id: a live worker
    renews the lease of the job it works on (jobs.Heartbeat)."""
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.compat import TaskResultStatus
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another backend: nothing of ours to clean
        return 0
    if not isinstance(advance_generation.get_backend(), DatabaseBackend):
        return 0
    from .models import Generation

    now = timezone.now()
    paths = [t.module_path for t in LEASED_TASKS]
    # Rows queued before the split into apps name the old module (still
    # importable: playground/core/tasks.py).
    paths += [f"playground.core.tasks.{t.name}" for t in LEASED_TASKS]
    candidates = list(DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, task_path__in=paths,
        started_at__lt=now - timedelta(seconds=settings.JOB_LEASE_SECONDS),
    ).values_list("id", flat=True)[:500])
    if not candidates:
        return 0
    alive = set(Generation.objects.filter(
        held_by__in=[str(c) for c in candidates], lease_until__gte=now,
    ).values_list("held_by", flat=True))
    dead = [c for c in candidates if str(c) not in alive]
    return DBTaskResult.objects.filter(id__in=dead, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED, finished_at=now, return_value=None,
        exception_class_path="playground.generations.tasks.WorkerDied",
        traceback="The worker running this task stopped (its job's lease was no longer renewed); "
                  "the recovery sweep resumed the job.\n",
    )
