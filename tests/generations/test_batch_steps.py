"""A task that advances a job also runs the due steps of more jobs like it
(same team, provider, state and priority), each under its own task row
(issue 10: a claim per step was the ceiling at 1,000 jobs in flight). The
promises still hold job by job: sent once, nothing lost, limits held."""

import os
import signal

from django_tasks_db.models import DBTaskResult
import pytest

from playground.generations.pipeline import calls, create, sweep
from playground.generations.models import Generation

from tests import factories
from tests.generations.test_worker_crash import start_worker, stop_all, wait_for
from tests.generations.test_worker_order import run_one_task
from tests.helpers import Counting, start_sandbox, use_sandbox


def rows_of(gen):
    return DBTaskResult.objects.filter(args_kwargs__args__0=gen.pk)


@pytest.mark.django_db
def test_one_task_sends_several_queued_jobs_each_once(team, user, sandbox, settings):
    settings.JOB_BATCH_SIZE = 4
    gens = [factories.job(team, user, prompt=f"a paper boat, number {i}") for i in range(5)]
    sent = Counting(sandbox)
    try:
        run_one_task()
    finally:
        sandbox.server.set_app(sent.app)

    states = []
    for g in gens:
        g.refresh_from_db()
        states.append(g.status)
    # The task's own job and three more: the fifth waits for its own task.
    assert states == [Generation.RUNNING] * 4 + [Generation.QUEUED]
    assert sent.count("/generate") == 4
    for g in gens[:4]:
        assert g.provider_job_id and g.lease_until is None  # saved, and let go
        first = rows_of(g).order_by("enqueued_at").first()
        assert first.status == "SUCCESSFUL" and first.return_value.startswith("poll in")
    assert rows_of(gens[4]).get().status == "READY"


@pytest.mark.django_db
def test_a_batch_of_polls_where_one_job_fails_finishes_the_others(team, user, sandbox, settings):
    settings.JOB_BATCH_SIZE = 8
    gens = [factories.job(team, user, prompt=f"a green teapot, number {i}") for i in range(3)]
    broken = factories.job(team, user, prompt="a green teapot [fail]")
    run_one_task()  # all four sent in one batch
    sandbox.finish_now()
    from tests.helpers import advance_clock

    advance_clock()

    run_one_task()  # and polled in one

    for g in gens:
        g.refresh_from_db()
        assert g.status == Generation.SUCCEEDED, g.error_message
        assert g.images.count() == 1
    broken.refresh_from_db()
    assert broken.status == Generation.FAILED and "failed" in broken.error_message.lower()
    # Every step's row is done, and each image has its thumbnail: no task is left.
    assert not DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).exists()
    assert all(g.images.get().thumbnail.name for g in gens)


@pytest.mark.django_db
def test_a_batch_takes_only_jobs_of_the_same_team_and_provider(team, user, other_team, other_user, sandbox, settings):
    settings.JOB_BATCH_SIZE = 8
    mine = [factories.job(team, user, prompt=f"a kite, number {i}") for i in range(2)]
    theirs = factories.job(other_team, other_user, prompt="a kite of another team")
    other_provider = factories.job(team, user, "kwiki", "generate", prompt="a kite on another provider")

    run_one_task()

    for g in mine:
        g.refresh_from_db()
        assert g.status == Generation.RUNNING
    for g in (theirs, other_provider):
        g.refresh_from_db()
        assert g.status == Generation.QUEUED
        assert rows_of(g).get().status == "READY"


@pytest.mark.django_db
def test_a_batch_holds_the_providers_rate_limit(team, user, sandbox, settings):
    """kwiki documents 10 requests a minute: a batch of 12 sends 10, and the
    others wait for the limit instead of hitting the provider's 429."""
    settings.JOB_BATCH_SIZE = 16
    gens = [factories.job(team, user, "kwiki", "generate", prompt=f"a tin robot, number {i}") for i in range(12)]
    sent = Counting(sandbox)
    try:
        run_one_task()
    finally:
        sandbox.server.set_app(sent.app)

    assert sent.count("/generate") == 10
    waiting = []
    for g in gens:
        g.refresh_from_db()
        if g.status == Generation.QUEUED:
            waiting.append(g)
    assert len(waiting) == 2
    assert all(g.wait_reason == "rate_limit" and g.due_at > g.created_at for g in waiting)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_no_job_and_sends_nothing_twice(team, user, settings, tmp_path):
    """The worker dies while sending the first job of a batch of three (a
    slow synchronous provider): the two it had taken but not sent are resumed
    by the sweep once their leases run out and sent once; the one in flight
    is not sent again (RELIABILITY 1, 2); no task row stays RUNNING."""
    sb = start_sandbox(tmp_path, latency=3)
    sent = Counting(sb)
    use_sandbox(settings, sb)
    settings.JOB_LEASE_SECONDS = 2
    settings.JOB_SWEEP_GRACE_SECONDS = 600  # only the leases can free the jobs
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gens = [create.create(team=team, owner=user, provider="kwiki", model="generate",
                        params={"prompt": f"a slow sunrise, number {i}", "quality": "hires"}) for i in range(3)]
    first = start_worker(sb, settings.MEDIA_ROOT, JOB_BATCH_SIZE="8")
    second = None
    try:
        def one_sending_all_held():
            rows = list(Generation.objects.filter(pk__in=[g.pk for g in gens]))
            return (sum(g.status == Generation.SUBMITTING for g in rows) == 1
                    and all(g.lease_until is not None for g in rows)
                    and sent.count("/generate") == 1)  # its request has reached the provider (3 s to answer)

        wait_for(one_sending_all_held, 60, "a batch to take the three jobs and send the first")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        held = {g.pk: g.held_by for g in Generation.objects.filter(pk__in=[g.pk for g in gens])}
        assert len(set(held.values())) == 3  # each under its own task row
        second = start_worker(sb, settings.MEDIA_ROOT, JOB_BATCH_SIZE="8")

        def all_done():
            sweep.sweep()
            return not Generation.objects.filter(pk__in=[g.pk for g in gens], status__in=Generation.ACTIVE).exists()

        wait_for(all_done, 60, "the jobs to end after the crash")
        dead_rows = DBTaskResult.objects.filter(id__in=list(held.values()))

        def rows_reaped():
            sweep.sweep()
            return not dead_rows.filter(status="RUNNING").exists()

        wait_for(rows_reaped, 30, "the dead worker's rows to be marked failed")
    finally:
        stop_all(sb, first, second)
    outcomes = sorted((g.status, g.error_kind) for g in Generation.objects.filter(pk__in=[g.pk for g in gens]))
    assert outcomes == [(Generation.FAILED, "unknown_outcome"), (Generation.SUCCEEDED, ""),
                        (Generation.SUCCEEDED, "")]
    assert sent.count("/generate") == 3  # each sent once


@pytest.mark.django_db
def test_a_first_poll_that_cannot_be_queued_keeps_the_provider_job_and_the_sweep_resumes_it(
        team, user, sandbox, settings, monkeypatch):
    """The job id and the first poll's task are written in one commit; the
    task in a savepoint, so a failure writing it never drops the job id."""
    from datetime import timedelta

    from django.db import DatabaseError
    from django.utils import timezone

    from tests.helpers import run_tasks

    from playground.generations.pipeline import calls, sweep

    gen = factories.job(team, user, prompt="a lighthouse in fog")
    real = calls.enqueue_now_or_on_commit

    def broken_insert(task, *args):  # the first poll's row, after the submit
        DBTaskResult.objects.filter(pk__in=[]).update(status="READY")  # a write inside the savepoint...
        raise DatabaseError("disk I/O error")  # ...then the insert fails

    monkeypatch.setattr(calls, "enqueue_now_or_on_commit", broken_insert)
    sent = Counting(sandbox)
    try:
        run_one_task()
    finally:
        sandbox.server.set_app(sent.app)
    monkeypatch.setattr(calls, "enqueue_now_or_on_commit", real)

    gen.refresh_from_db()
    assert sent.count("/generate") == 1
    assert gen.status == Generation.RUNNING and gen.provider_job_id  # committed despite the failed insert
    assert not rows_of(gen).filter(status="READY").exists()  # no poll queued: the savepoint rolled it back

    # Overdue past the grace: the sweep queues it again, and it finishes without a second send.
    Generation.objects.filter(pk=gen.pk).update(
        due_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS + 1))
    assert sweep.sweep() == 1
    sent = Counting(sandbox)
    try:
        run_tasks(until=gen)
    finally:
        sandbox.server.set_app(sent.app)
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED and gen.images.count() == 1
    assert sent.count("/generate") == 0
