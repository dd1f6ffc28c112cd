"""The order in which workers take tasks: a new job is sent to the provider
before any due poll of older jobs, and the recovery sweep does not
re-enqueue a job that is only late because the workers are behind
(issue 10: "created -> sent" must stay short with 1,000 jobs in flight)."""

from datetime import timedelta

from django.utils import timezone
from django_tasks_db.models import DBTaskResult
import pytest

from playground.generations.pipeline import callbacks, sweep
from playground.generations.models import Generation

from tests import factories


def run_one_task():
    """One task, taken as db_worker takes it (its order)."""
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.management.commands.db_worker import Worker

    db_worker.close_old_connections = lambda: None
    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=1, worker_id="test-worker", excluded_queue_names=[]).run()


def ready_tasks_of(gen):
    return DBTaskResult.objects.filter(status="READY", args_kwargs__args__0=gen.pk)


def running_jobs_with_overdue_polls(team, user, n):
    """n jobs sent to the provider whose next poll is overdue by a minute
    (as when the workers have a backlog)."""
    gens = [factories.job(team, user, prompt=f"a lighthouse, number {i}") for i in range(n)]
    for _ in gens:  # one task each at most (a worker may send several queued jobs in one batch)
        if not Generation.objects.filter(pk__in=[g.pk for g in gens], status=Generation.QUEUED).exists():
            break
        run_one_task()
    for g in gens:
        g.refresh_from_db()
        assert g.status == Generation.RUNNING
    past = timezone.now() - timedelta(minutes=1)
    Generation.objects.filter(pk__in=[g.pk for g in gens]).update(due_at=past)
    DBTaskResult.objects.filter(status="READY").update(run_after=past)
    return gens


@pytest.mark.django_db
def test_a_new_job_is_sent_before_the_due_polls_of_older_jobs(team, user, sandbox):
    older = running_jobs_with_overdue_polls(team, user, 3)
    new = factories.job(team, user, prompt="a red kite over a field")

    run_one_task()

    new.refresh_from_db()
    assert new.status == Generation.RUNNING and new.provider_job_id  # sent first
    for g in older:
        assert ready_tasks_of(g).count() == 1  # their polls still wait their turn


@pytest.mark.django_db
def test_a_callback_nudge_is_taken_before_due_polls(team, user, sandbox):
    older = running_jobs_with_overdue_polls(team, user, 3)
    nudged = older[-1]
    # Its own poll is not due yet: only the callback makes it ask now.
    later = timezone.now() + timedelta(minutes=5)
    Generation.objects.filter(pk=nudged.pk).update(due_at=later)
    ready_tasks_of(nudged).update(run_after=later)
    nudged.refresh_from_db()
    sandbox.finish_now()
    assert callbacks.nudge(nudged)

    run_one_task()

    nudged.refresh_from_db()
    assert nudged.status == Generation.SUCCEEDED
    for g in older[:-1]:
        g.refresh_from_db()
        assert g.status == Generation.RUNNING


@pytest.mark.django_db
def test_the_sweep_leaves_a_backlogged_job_alone_but_resumes_a_lost_one(team, user, sandbox, settings):
    settings.JOB_SWEEP_GRACE_SECONDS = 5
    backlogged, lost = running_jobs_with_overdue_polls(team, user, 2)
    ready_tasks_of(lost).delete()  # its task is gone (a queue that lost it)

    assert sweep.sweep() == 1

    assert ready_tasks_of(backlogged).count() == 1  # still one task: not queued twice
    assert ready_tasks_of(lost).count() == 1
    lost.refresh_from_db()
    assert lost.due_at > timezone.now() - timedelta(seconds=5)


@pytest.mark.django_db
def test_a_resumed_job_takes_its_turn_among_due_polls(team, user, sandbox, settings):
    """A step enqueued for now without urgency (a resumed job) sorts by its
    time, not after every delayed task."""
    settings.JOB_SWEEP_GRACE_SECONDS = 5
    backlogged, lost = running_jobs_with_overdue_polls(team, user, 2)
    ready_tasks_of(lost).delete()
    sweep.sweep()
    task = ready_tasks_of(lost).get()
    assert task.run_after <= timezone.now()
    assert task.priority == ready_tasks_of(backlogged).get().priority
