"""A job's two rows (the job, due now, and its reservation) are written in
one transaction, and a step's moves write the job's row (its next due time)
and nothing else: the row is the queue, no task row is written for a job."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
import pytest

from playground.generations.pipeline import create, queue, results
from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded
from playground.ledger.models import Budget, Entry

from django_tasks_db.models import DBTaskResult

PARAMS = {"prompt": "a lighthouse at dusk", "image_size": "square", "image_resolution": "1K",
          "num_inference_steps": 30, "seed": 7}


def concrete(obj, skip=()):
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.attname not in skip}


def new_job(team, user, **extra):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={**PARAMS, **extra})


def running_job(team, user):
    gen = new_job(team, user)
    assert gen.transition(Generation.QUEUED, via="send", phase="submitting")
    assert gen.transition(Generation.SUBMITTING, via="accepted", provider_job_id="task-1", phase="submitted")
    return gen


@pytest.mark.django_db
def test_the_job_row_is_the_one_save_writes(team, user):
    gen = new_job(team, user)
    stored = Generation.objects.get(pk=gen.pk)
    # The same job saved by the ORM: every column but its own id, uuid and times.
    twin = Generation(team=team, owner=user, provider="kie", model="seedream-v4", params=gen.params,
                      cost_estimate=gen.cost_estimate, is_adult=gen.is_adult, visibility=gen.visibility)
    twin.save(force_insert=True)
    skip = {"id", "uuid", "created_at", "updated_at", "due_at", "callback_token"}
    assert concrete(stored, skip) == concrete(Generation.objects.get(pk=twin.pk), skip)
    assert concrete(gen, {"created_at", "updated_at"}) == concrete(stored, {"created_at", "updated_at"})
    assert not gen._state.adding and gen._state.db == "default"  # a saved instance: it can transition
    assert gen.transition(Generation.QUEUED, via="send", phase="submitting")


@pytest.mark.django_db
def test_the_reservation_is_written_once_and_names_the_job(team, user):
    gen = new_job(team, user)
    [entry] = Entry.objects.filter(generation_uuid=gen.uuid)
    assert (entry.kind, entry.generation_id, entry.amount, entry.unit, entry.user_id, entry.username) == (
        Entry.RESERVE, gen.pk, gen.cost_estimate, "kie_credit", user.pk, user.get_username())
    assert entry.team_id == team.pk and entry.provider == "kie" and entry.model == "seedream-v4"


@pytest.mark.django_db
def test_a_new_job_is_due_at_once_and_the_next_worker_claims_it(team, user):
    before = timezone.now()
    gen = new_job(team, user)
    stored = Generation.objects.get(pk=gen.pk)
    assert before <= stored.due_at <= timezone.now()
    assert stored.lease_until is None and stored.held_by == ""
    assert list(queue.due_steps(timezone.now())) == [stored]
    [claimed] = queue.claim(5, "worker-a")
    assert claimed.pk == gen.pk and claimed.held_by == "worker-a" and claimed.lease_until > timezone.now()
    assert queue.claim(5, "worker-b") == []  # held: no second worker steps it
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db
def test_a_delayed_step_keeps_its_time(team, user):
    gen = running_job(team, user)
    results.schedule_poll(gen, delay=30)
    gen.refresh_from_db()
    assert 28 < (gen.due_at - timezone.now()).total_seconds() <= 30
    assert queue.claim(5, "worker-a") == []  # not before its time
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert [g.pk for g in queue.claim(5, "worker-a")] == [gen.pk]


@pytest.mark.django_db(transaction=True)
def test_no_task_is_enqueued_for_a_job_and_a_refused_one_leaves_nothing(team, user, settings):
    from django_tasks_db.compat import task_enqueued

    seen = []

    def receiver(sender, task_result, **kw):
        seen.append(task_result.args)

    task_enqueued.connect(receiver)
    try:
        gen = new_job(team, user)
        Budget.objects.create(team=team, provider="kie", amount=Decimal("0.01"), hard=True, period="month")
        with pytest.raises(BudgetExceeded):
            new_job(team, user, seed=8)
        assert seen == []  # the row is the job's place in the queue
        assert list(Generation.objects.values_list("pk", flat=True)) == [gen.pk]  # the refused job never existed
        assert Entry.objects.count() == 1 and not DBTaskResult.objects.exists()
        assert [g.pk for g in queue.claim(5, "worker-a")] == [gen.pk]
    finally:
        task_enqueued.disconnect(receiver)


@pytest.mark.django_db
def test_with_budgets_the_full_check_runs_and_a_soft_one_warns(team, user):
    Budget.objects.create(team=team, provider="kie", amount=Decimal("0.01"), hard=False, period="month")
    gen = new_job(team, user)
    assert [s.budget.provider for s in gen.budget_warnings] == ["kie"]
    assert Entry.objects.filter(generation_uuid=gen.uuid, kind=Entry.RESERVE).count() == 1


@pytest.mark.django_db(transaction=True)
def test_creating_a_job_writes_its_two_rows_in_one_transaction(team, user):
    """The job (due now) and its reservation after one read of the team's
    budgets: nothing else inside (on SQLite the transaction holds the one
    writer lock)."""
    new_job(team, user)  # the caches warm
    with CaptureQueriesContext(connection) as queries:
        new_job(team, user, seed=9)
    sql = [q["sql"].split()[0] for q in queries.captured_queries]
    begin = sql.index("BEGIN")  # BEGIN IMMEDIATE on SQLite
    assert sql[begin + 1:] == ["INSERT", "SELECT", "INSERT", "COMMIT"]
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_reserving_outside_a_transaction_is_refused(team, user):
    gen = Generation(team=team, owner=user, provider="kie", model="seedream-v4", params=PARAMS,
                     cost_estimate=Decimal("3.5"))
    gen.save()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        book.reserve(gen)
    assert not Entry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_poll_scheduled_writes_its_move_and_nothing_else(team, user):
    gen = running_job(team, user)
    Generation.objects.filter(pk=gen.pk).update(lease_until=timezone.now() + timedelta(seconds=60), held_by="w")
    with CaptureQueriesContext(connection) as queries:
        assert results.schedule_poll(gen, delay=12, pending=True) == "poll in 12s"
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]  # one statement, its own commit
    gen.refresh_from_db()
    assert gen.wait_reason == "polling" and gen.pending_seen_at is not None and gen.lease_until is None
    assert 10 < (gen.due_at - timezone.now()).total_seconds() <= 12
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db
def test_a_move_made_by_someone_else_first_wins(team, user):
    gen = running_job(team, user)
    assert Generation.objects.get(pk=gen.pk).transition(Generation.RUNNING, via="fail", error_kind="internal",
                                                         phase="")  # another worker's move, in between
    assert gen.transition(Generation.RUNNING, via="schedule_poll", phase="later") is False
    assert gen.phase != "later" and Generation.objects.get(pk=gen.pk).status == Generation.FAILED


@pytest.mark.django_db
def test_an_illegal_move_is_refused(team, user):
    from playground.generations.states import IllegalTransition

    gen = new_job(team, user)
    with pytest.raises(IllegalTransition):
        gen.transition(Generation.QUEUED, status=Generation.SUCCEEDED)
    assert Generation.objects.get(pk=gen.pk).status == Generation.QUEUED
