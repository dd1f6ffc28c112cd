"""The order in which workers take jobs: the Generation rows are the queue,
and a claim takes the due ones oldest due first (queue.claim). A new job is
due at once, so it is sent before polls scheduled after it however many jobs
are in flight (issue 10: "created -> sent" must stay short with 1,000 jobs
in flight); a callback makes its job due now; a job whose worker died takes
its turn by its own due time once the lease runs out, and a job late only
because the workers are behind is claimed once."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
import pytest

from playground.generations.models import Generation
from playground.generations.pipeline import callbacks
from playground.generations.pipeline.queue import claim, due_steps
from playground.generations.pipeline.worker import run_claimed

from tests import factories
from tests.helpers import step_job


def running_jobs(team, user, n, prompt="a lighthouse"):
    """n jobs sent to the provider, each waiting for its next poll."""
    gens = [factories.job(team, user, prompt=f"{prompt}, number {i}") for i in range(n)]
    for g in gens:
        assert step_job(g).startswith("poll in")
        g.refresh_from_db()
        assert g.status == Generation.RUNNING and g.lease_until is None
    return gens


def due_in(gen, seconds):
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now() + timedelta(seconds=seconds))


def claimed(limit, holder="test-worker", among=None):
    return [g.pk for g in claim(limit, holder, among=among)]


@pytest.mark.django_db
def test_a_new_job_is_due_at_once_and_not_behind_polls_due_later(team, user, sandbox):
    in_flight = running_jobs(team, user, 20)
    for g in in_flight:
        due_in(g, 60)  # their next polls, later
    new = factories.job(team, user, prompt="a red kite over a field")

    assert due_steps(timezone.now()).filter(pk=new.pk).exists()  # due the moment it is created
    rows = claim(10, "test-worker")
    assert [g.pk for g in rows] == [new.pk]  # the twenty polls in flight do not hold it back

    assert run_claimed(rows[0], {}).startswith("poll in")
    new.refresh_from_db()
    assert new.status == Generation.RUNNING and new.provider_job_id  # sent


@pytest.mark.django_db
def test_a_claim_takes_due_jobs_oldest_due_first(team, user, sandbox):
    """As if the workers were behind: a poll overdue by a minute goes first,
    then a new job due 30 s ago, then the polls scheduled after it."""
    overdue, later_a, later_b = running_jobs(team, user, 3)
    new = factories.job(team, user, prompt="a red kite over a field")
    due_in(overdue, -60)
    due_in(new, -30)
    due_in(later_a, -10)
    due_in(later_b, -5)

    assert claimed(1) == [overdue.pk]
    assert claimed(1) == [new.pk]
    assert claimed(5) == [later_a.pk, later_b.pk]
    assert claimed(5) == []  # all held now: nothing is taken twice


@pytest.mark.django_db
def test_a_callback_makes_its_job_due_now_in_its_turn(team, user, sandbox):
    overdue, nudged, waiting = running_jobs(team, user, 3)
    due_in(overdue, -60)  # behind already: stays ahead of the callback's job
    due_in(nudged, 300)  # its own poll is five minutes away: only the callback makes it ask now
    due_in(waiting, 300)
    nudged.refresh_from_db()
    assert claimed(5, among=Q(pk=nudged.pk)) == []
    sandbox.finish_now()

    assert callbacks.nudge(nudged)

    assert claimed(5, among=~Q(pk=overdue.pk) & ~Q(pk=nudged.pk)) == []  # nothing else became due
    rows = claim(5, "test-worker")
    assert [g.pk for g in rows] == [overdue.pk, nudged.pk]
    run_claimed(rows[1], {})
    nudged.refresh_from_db()
    assert nudged.status == Generation.SUCCEEDED and nudged.images.count() == 1
    waiting.refresh_from_db()
    assert waiting.status == Generation.RUNNING and waiting.lease_until is None  # untouched


@pytest.mark.django_db
def test_a_job_whose_worker_died_takes_its_turn_among_due_polls(team, user, sandbox):
    """Its lease ran out (no sweep re-queues it): it is due again with its own
    due time, so it sorts among the due polls by time, neither last nor
    twice; a job only late because the workers are behind is claimed once;
    one a live worker holds is not claimed at all."""
    backlogged, lost, later, live = running_jobs(team, user, 4)
    now = timezone.now()
    Generation.objects.filter(pk=backlogged.pk).update(due_at=now - timedelta(seconds=60))
    Generation.objects.filter(pk=lost.pk).update(due_at=now - timedelta(seconds=30), held_by="dead-worker",
                                                 lease_until=now - timedelta(seconds=1))
    Generation.objects.filter(pk=later.pk).update(due_at=now - timedelta(seconds=10))
    Generation.objects.filter(pk=live.pk).update(due_at=now - timedelta(seconds=90), held_by="live-worker",
                                                 lease_until=now + timedelta(seconds=30))

    assert claimed(10, "worker-a") == [backlogged.pk, lost.pk, later.pk]
    assert claimed(10, "worker-b") == []

    lost.refresh_from_db()
    live.refresh_from_db()
    assert lost.held_by == "worker-a" and lost.lease_until > now
    assert live.held_by == "live-worker"  # a live lease is never taken over
