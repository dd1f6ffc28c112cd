"""Background tasks, written against the Tasks API (django.tasks in Django 6,
the django-tasks backport here) so that the backend stays swappable.

Task arguments are ids only: never a key, never parameters."""

from datetime import timedelta
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # the backport
    from django_tasks import task

log = logging.getLogger("playground.jobs")


@task(takes_context=True)
def advance_generation(context, generation_id: int) -> str:
    from .pipeline import steps

    # The task result's id names this run in the job's lease.
    return steps.advance(generation_id, holder=str(context.task_result.id), batch=Batch.of(context.task_result))


@task(takes_context=True)
def adopt_claimed_job(context, generation_id: int) -> str:
    from .pipeline import callbacks

    return callbacks.adopt(generation_id, holder=str(context.task_result.id))


@task()
def make_thumbnails(generation_id: int) -> str:
    from . import thumbnails

    return thumbnails.make(generation_id)


def thumbnail_task():
    """make_thumbnails, after every submit and due poll
    (TASK_PRIORITY_BACKGROUND) where the backend orders by priority."""
    if not getattr(make_thumbnails.get_backend(), "supports_priority", False):
        return make_thumbnails
    return make_thumbnails.using(priority=settings.TASK_PRIORITY_BACKGROUND)


@task()
def sweep_generations() -> int:
    from .pipeline import sweep

    return sweep.sweep()


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
    return ready_task_args(advance_generation, generation_ids)


def ready_task_args(task, generation_ids, *, or_successful: bool = False) -> set[int]:
    """Of these jobs, those with a READY, due row of this task in the
    database queue (jobs_with_ready_task); or_successful: or one that has
    run to its end."""
    ids = [int(i) for i in generation_ids]
    if not ids:
        return set()
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return set()
    if not isinstance(task.get_backend(), DatabaseBackend):
        return set()
    found = set()
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = DBTaskResult.objects.ready()
        if or_successful:
            rows = rows | DBTaskResult.objects.filter(status="SUCCESSFUL")
        rows = rows.filter(
            task_path=task.module_path,
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
    renews the lease of the job it works on (pipeline.lease.Heartbeat)."""
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
    # A thumbnail task holds no lease and takes well under a second: one
    # still RUNNING after ten leases' time is a dead worker's (the sweep
    # queues its thumbnails again, thumbnails.sweep).
    stale = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, task_path=make_thumbnails.module_path,
        started_at__lt=now - timedelta(seconds=10 * settings.JOB_LEASE_SECONDS),
    ).update(status=TaskResultStatus.FAILED, finished_at=now, return_value=None,
             exception_class_path="playground.generations.tasks.WorkerDied",
             traceback="The worker running this task stopped; the recovery sweep queues its thumbnails again.\n")
    candidates = list(DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, task_path__in=paths,
        started_at__lt=now - timedelta(seconds=settings.JOB_LEASE_SECONDS),
    ).values_list("id", flat=True)[:500])
    if not candidates:
        return stale
    alive = set(Generation.objects.filter(
        held_by__in=[str(c) for c in candidates], lease_until__gte=now,
    ).values_list("held_by", flat=True))
    dead = [c for c in candidates if str(c) not in alive]
    return stale + DBTaskResult.objects.filter(id__in=dead, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED, finished_at=now, return_value=None,
        exception_class_path="playground.generations.tasks.WorkerDied",
        traceback="The worker running this task stopped (its job's lease was no longer renewed); "
                  "the recovery sweep resumed the job.\n",
    )


class Batch:
    """More steps like the one a task runs, taken by the same run: the next
    due advance_generation rows of the same priority whose jobs are of the
    same team and provider, in the same state, due and not held. Each row is
    claimed (READY -> RUNNING) as a worker would claim it, its job is taken
    under the row's own id (so its lease, its heartbeat and the sweep work as
    for a task of its own), and the row is marked done after its step.

    A claim is a few database round trips and a step's set-up is a few more
    (issue 10): with 1,000 jobs in flight a batch saves most of them. Only
    with the database backend, whose rows can be claimed by id; another
    engine runs one step per task (Batch.of returns None)."""

    def __init__(self, row_id: str, priority: int, queue_name: str, backend_name: str, worker_id: str):
        self.row_id, self.priority, self.queue_name = row_id, priority, queue_name
        self.backend_name, self.worker_id = backend_name, worker_id
        self.finished: dict = {}  # result -> the rows (holders) that returned it, not yet written

    @classmethod
    def of(cls, task_result) -> "Batch | None":
        if settings.JOB_BATCH_SIZE <= 1:
            return None
        try:
            from django_tasks_db.backend import DatabaseBackend
        except ImportError:  # pragma: no cover - installed with the app
            return None
        if not isinstance(advance_generation.get_backend(), DatabaseBackend):
            return None
        task = task_result.task  # as its row says: priority, queue
        worker = (task_result.worker_ids or ["batch"])[-1]
        return cls(str(task_result.id), task.priority, task.queue_name, task_result.backend, str(worker)[:64])

    def claim(self, gen, limit: int | None = None) -> list[tuple[int, str]]:
        """Claim up to limit more rows like this one: [(generation id, the
        row's id as the holder)], in queue order. Their jobs are not taken
        yet (the caller takes each with Generation.take)."""
        from django_tasks_db.compat import TaskResultStatus
        from django_tasks_db.models import DBTaskResult
        from django_tasks_db.utils import exclusive_transaction

        from .models import Generation

        limit = (settings.JOB_BATCH_SIZE - 1) if limit is None else limit
        if limit <= 0:
            return []
        now = timezone.now()
        rows = list(
            DBTaskResult.objects.ready().filter(
                backend_name=self.backend_name, queue_name=self.queue_name,
                task_path=advance_generation.module_path, priority=self.priority,
            ).exclude(id=self.row_id).values_list("id", "args_kwargs")[:limit * 4]
        )
        wanted = {}
        for rid, a in rows:
            args = (a or {}).get("args") or []
            if args and isinstance(args[0], int) and args[0] != gen.pk:
                wanted.setdefault(args[0], rid)  # one row per job
        if not wanted:
            return []
        eligible = set(
            Generation.objects.filter(
                pk__in=list(wanted), team_id=gen.team_id, provider=gen.provider, status=gen.status,
                due_at__lte=now,
            ).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).values_list("pk", flat=True)
        )
        picked = [(pk, rid) for pk, rid in wanted.items() if pk in eligible][:limit]
        if not picked:
            return []
        with exclusive_transaction(DBTaskResult.objects.db):
            free = set(
                DBTaskResult.objects.select_for_update(skip_locked=True)
                .filter(id__in=[rid for _, rid in picked], status=TaskResultStatus.READY)
                .values_list("id", flat=True)
            )
            if free:
                DBTaskResult.objects.filter(id__in=free, status=TaskResultStatus.READY).update(
                    status=TaskResultStatus.RUNNING, started_at=now, worker_ids=[self.worker_id])
        return [(pk, str(rid)) for pk, rid in picked if rid in free]

    def done(self, holder: str, value=None, error: BaseException | None = None):
        """Note a claimed row finished, as the worker marks its own: an error
        at once, a result with the others (flush: one update per distinct
        result)."""
        if error is None:
            self.finished.setdefault(value, []).append(holder)
            return
        from traceback import format_exception

        from django_tasks_db.compat import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.filter(id=holder, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED, finished_at=timezone.now(), return_value=None,
            exception_class_path=f"{type(error).__module__}.{type(error).__qualname__}",
            traceback="".join(format_exception(error)))

    def flush(self):
        """Write the results noted since the last flush."""
        from django_tasks_db.compat import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        finished, self.finished = self.finished, {}
        now = timezone.now()
        for value, holders in finished.items():
            DBTaskResult.objects.filter(id__in=holders, status=TaskResultStatus.RUNNING).update(
                status=TaskResultStatus.SUCCESSFUL, finished_at=now, return_value=value,
                exception_class_path="", traceback="")
