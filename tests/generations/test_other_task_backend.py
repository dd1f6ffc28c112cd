"""The task backend stays swappable: the whole pipeline (submit, deferred
polls, download, ledger) runs on another engine through the Tasks API,
django-tasks-rq on the local Redis, with an RQ worker doing the work.

Nothing waits for time to pass: deferred polls sit in RQ's scheduled
registry until the test makes them due (the job's due time moved to now,
the sandbox's job finished), as tests/helpers.advance_clock does for the
database backend."""

from decimal import Decimal

import pytest

from playground.generations.models import Generation
from playground.ledger.models import Entry

from tests import factories

django_rq = pytest.importorskip("django_rq")

RQ_TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}


@pytest.fixture
def rq_queue(settings):
    from django_tasks_rq.backend import Job
    from redis.exceptions import ConnectionError as RedisDown

    settings.TASKS = RQ_TASKS
    queue = django_rq.get_queue("default", job_class=Job)
    try:
        queue.connection.flushdb()  # the test database of Redis (settings: db 15 in tests)
    except RedisDown:
        pytest.skip("no Redis on localhost")
    yield queue
    queue.connection.flushdb()


def work(queue) -> None:
    """An RQ worker (same process) runs everything queued, then stops."""
    from django_tasks_rq.backend import Job
    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection, job_class=Job).work(burst=True)


def make_scheduled_due(queue) -> int:
    """Time passes: each scheduled task (a deferred poll) is queued now, its
    job due now, and the sandbox's jobs finish."""
    from django.utils import timezone
    from rq.registry import ScheduledJobRegistry

    from tests.helpers import finish_provider_jobs

    registry = ScheduledJobRegistry(queue=queue)
    ids = registry.get_job_ids()
    Generation.objects.filter(status__in=Generation.ACTIVE).update(due_at=timezone.now())
    finish_provider_jobs()
    for job_id in ids:
        job = queue.fetch_job(job_id)
        registry.remove(job)
        queue.enqueue_job(job)
    return len(ids)


def test_a_job_runs_through_rq_on_redis_submit_polls_download_and_capture(transactional_db, sandbox, rq_queue):
    from playground.generations.tasks import advance_generation, queue_in_database

    assert not queue_in_database(advance_generation.get_backend())  # RQ: sent after commit
    user = factories.user("alice")
    team = factories.team("Alpha", owner=user)
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a paper boat on a pond")
    assert rq_queue.count == 1  # its first task, sent once the row was committed
    for _ in range(10):
        work(rq_queue)
        gen.refresh_from_db()
        if not gen.is_active:
            break
        assert make_scheduled_due(rq_queue), f"job {gen.status} ({gen.phase}) with nothing scheduled"
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.images.count() == 1
    kinds = sorted(Entry.objects.filter(generation=gen).values_list("kind", flat=True))
    assert kinds == ["capture", "reserve"]
    assert Entry.objects.get(generation=gen, kind="capture").amount == gen.cost_estimate > Decimal("0")


def test_a_refused_job_sends_no_task_to_rq(transactional_db, sandbox, rq_queue):
    """Enqueued after commit: a job rolled back (here by a hard budget) leaves no task behind."""
    from playground.ledger.budgets import BudgetExceeded
    from playground.ledger.models import Budget

    user = factories.user("alice")
    team = factories.team("Alpha", owner=user)
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("1"), period="month", hard=True)
    with pytest.raises(BudgetExceeded):
        factories.job(team, user, "kie", "seedream-v4", prompt="a paper boat on a pond")
    assert Generation.objects.count() == 0
    assert rq_queue.count == 0
