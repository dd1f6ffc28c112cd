"""The job worker (pipeline.worker.Worker, `manage.py run_jobs`): one
process claims due rows (queue.claim) up to its free threads and has that
many provider calls in flight at once; the jobs of one claim share the
endpoint resolved for their team and provider; one heartbeat renews the
leases of every job it holds; a stop lets the steps in flight end, and
--max-steps makes it exit (serve then starts a fresh one). A claim never
takes a row that is not due or that a live lease holds, even with several
workers claiming at once. Real HTTP against the sandbox throughout."""

import contextlib
import gc
import sqlite3
import subprocess
import threading
import time
from datetime import timedelta

from django.db import connections
from django.utils import timezone
import pytest

from playground.accounts.models import Endpoint, ProviderCredential
from playground.generations.models import Generation
from playground.providers.errors import ProviderError
from playground.generations.pipeline import create, lease
from playground.generations.pipeline.queue import claim
from playground.generations.pipeline.results import fail
from playground.generations.pipeline.worker import Worker
from playground.sandbox.app import Sandbox

from tests import factories
from tests.generations.test_worker_crash import start_worker, wait_for
from tests.helpers import Counting, start_sandbox, use_sandbox


class InFlight:
    """Counts the provider calls (requests whose path holds `fragment`) in
    flight at the sandbox, and the most at once."""

    def __init__(self, sb, fragment="/generate"):
        self.app, self.fragment = sb.server.get_app(), fragment
        sb.server.set_app(self)
        self.lock, self.now, self.most, self.total = threading.Lock(), 0, 0, 0

    def __call__(self, environ, start_response):
        if self.fragment not in environ.get("PATH_INFO", ""):
            return self.app(environ, start_response)
        with self.lock:
            self.now += 1
            self.total += 1
            self.most = max(self.most, self.now)
        try:
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.now -= 1


@contextlib.contextmanager
def running(**kwargs):
    """A Worker in a thread (as run_jobs runs it), stopped and joined after."""
    w = Worker(interval=kwargs.pop("interval", 0.05), worker_id="job-worker-test", **kwargs)
    outcome = {}

    def run():
        try:
            outcome["steps"] = w.run()
        except BaseException as e:  # surfaced below: a dead worker hides as a stuck job
            outcome["error"] = e
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True, name="job-worker-test")
    thread.start()
    try:
        yield w, thread, outcome
    finally:
        w.stop()
        thread.join(timeout=30)
        gc.collect()  # the connections of the pool's ended threads, closed now rather than at exit
    assert not thread.is_alive(), "the worker did not stop"
    assert "error" not in outcome, outcome.get("error")


def kwiki_jobs(team, user, n, prompt="a tin robot", quality="hires"):
    """Kwiki answers synchronously: the submit's request stays open for the
    sandbox's latency, and the job ends in that one step."""
    return [create.create(team=team, owner=user, provider="kwiki", model="generate",
                          params={"prompt": f"{prompt}, number {i}", "quality": quality}) for i in range(n)]


def rows(gens):
    return Generation.objects.filter(pk__in=[g.pk for g in gens]).order_by("pk")


@pytest.fixture
def slow_sandbox(tmp_path, settings):
    """A sandbox of its own whose synchronous calls take 1.5 s."""
    sb = start_sandbox(tmp_path, latency=1.5)
    use_sandbox(settings, sb)
    yield sb
    sb.stop()


@pytest.mark.django_db(transaction=True)
def test_one_worker_has_its_threads_calls_in_flight_at_once(team, user, slow_sandbox):
    """Six jobs, six threads: they end in about one call's time, not six."""
    calls = InFlight(slow_sandbox)
    gens = kwiki_jobs(team, user, 6)
    started = time.monotonic()
    with running(threads=6):
        wait_for(lambda: not rows(gens).filter(status__in=Generation.ACTIVE).exists(), 30, "the jobs to end")
    elapsed = time.monotonic() - started
    assert [g.status for g in rows(gens)] == [Generation.SUCCEEDED] * 6
    assert calls.total == 6 and calls.most == 6  # each sent once, all at the same time
    assert elapsed < 3 * 1.5, elapsed  # one after another would take 9 s


@pytest.mark.django_db(transaction=True)
def test_the_jobs_of_a_claim_resolve_their_endpoint_once_per_team_and_provider(
        team, user, other_team, other_user, sandbox, monkeypatch):
    """One claim takes eight jobs of one team and four of another (same
    provider), stepped on twelve threads at once: two lookups, not twelve,
    and each job still goes out with its own team's key."""
    cred = ProviderCredential(team=other_team, provider="kie", base_url=sandbox.url + "/kie")
    cred.set_key("second-key")
    cred.save()
    mine = [factories.job(team, user, prompt=f"a paper boat, number {i}") for i in range(8)]
    theirs = [factories.job(other_team, other_user, prompt=f"a paper plane, number {i}") for i in range(4)]
    lookups, real = [], Endpoint.resolve.__func__

    def resolve(cls, team, provider, **kwargs):
        lookups.append((team.pk, provider))
        return real(cls, team, provider, **kwargs)

    monkeypatch.setattr(Endpoint, "resolve", classmethod(resolve))
    with running(threads=12, max_steps=12) as (w, thread, outcome):
        thread.join(timeout=30)  # twelve steps, then it exits by itself
    assert outcome["steps"] == 12
    assert sorted(lookups) == sorted([(team.pk, "kie"), (other_team.pk, "kie")])
    with sqlite3.connect(sandbox.app.config.db_path) as c:
        key_of = dict(c.execute("SELECT id, api_key_hash FROM tasks"))
    for gens, key in ((mine, "sandbox-key"), (theirs, "second-key")):
        for g in rows(gens):
            assert g.status == Generation.RUNNING and g.provider_job_id  # sent
            assert key_of[g.provider_job_id] == Sandbox.key_hash(key)


@pytest.mark.django_db(transaction=True)
def test_one_heartbeat_renews_the_leases_of_all_the_jobs_in_flight(team, user, settings, slow_sandbox, monkeypatch):
    """Three calls longer than the lease: one update per beat, from the one
    heartbeat thread, keeps all three held; another worker claiming all
    along gets none of them, and none is sent twice."""
    settings.JOB_LEASE_SECONDS, settings.JOB_HEARTBEAT_SECONDS = 1, 0.2
    calls = InFlight(slow_sandbox)
    beats, real = [], lease.renew

    def renew(ids, holder):
        beats.append((threading.current_thread().name, frozenset(ids)))
        return real(ids, holder)

    monkeypatch.setattr(lease, "renew", renew)
    gens = kwiki_jobs(team, user, 3)
    taken_by_another = []
    with running(threads=3):
        wait_for(lambda: calls.now == 3, 30, "the three calls in flight")

        def done():
            taken_by_another.extend(claim(10, "another-worker"))
            return not rows(gens).filter(status__in=Generation.ACTIVE).exists()

        wait_for(done, 30, "the jobs to end")
    assert [g.status for g in rows(gens)] == [Generation.SUCCEEDED] * 3
    assert not taken_by_another
    assert calls.total == 3
    assert {name for name, _ in beats} == {"lease-heartbeat"}
    assert frozenset(g.pk for g in gens) in {ids for _, ids in beats}  # all three in one update
    assert len(beats) < 3 / 0.2  # one a beat for all of them, not one per job


@pytest.mark.django_db(transaction=True)
def test_a_stopped_worker_finishes_the_steps_in_flight_and_takes_no_more(team, user, slow_sandbox):
    calls = InFlight(slow_sandbox)
    gens = kwiki_jobs(team, user, 3)
    with running(threads=2) as (w, thread, outcome):
        wait_for(lambda: calls.now == 2, 30, "two calls in flight")
        w.stop()  # as on SIGTERM
        thread.join(timeout=30)
    assert outcome["steps"] == 2
    first, second, third = rows(gens)
    for g in (first, second):
        assert g.status == Generation.SUCCEEDED and g.images.count() == 1  # not left "submitting"
        assert g.lease_until is None
    assert third.status == Generation.QUEUED and not third.held_by and third.lease_until is None
    assert calls.total == 2


@pytest.mark.django_db(transaction=True)
def test_max_steps_makes_a_served_worker_exit(team, user, settings, tmp_path):
    """serve starts run_jobs with --max-steps TASK_WORKER_MAX_TASKS: after
    that many steps the process exits by itself (serve starts a fresh one)."""
    sb = start_sandbox(tmp_path, latency=0.1)
    use_sandbox(settings, sb)
    settings.TASK_WORKER_MAX_TASKS = 2
    gens = kwiki_jobs(team, user, 3, quality="fast")
    proc = start_worker(sb, settings.MEDIA_ROOT, "recycled", stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sb.stop()
    assert proc.returncode == 0 and "ran 2 step(s)" in out, out
    statuses = [g.status for g in rows(gens)]
    assert sorted(statuses) == [Generation.QUEUED, Generation.SUCCEEDED, Generation.SUCCEEDED]
    assert not rows(gens).filter(status=Generation.QUEUED, lease_until__isnull=False).exists()


def lost_answer(team, user):
    """A job whose send's answer never came back: failed as "unknown outcome", no job id."""
    gen = factories.job(team, user, prompt="a brass key, answer lost")
    assert gen.transition(Generation.QUEUED, via="send", phase="submitting")
    fail(gen, Generation.SUBMITTING, ProviderError("unknown_outcome", "The answer was lost."))
    return gen


@pytest.mark.django_db
def test_a_claim_never_returns_a_leased_or_not_due_row(team, user):
    now = timezone.now()

    def row(status_job=None, **fields):
        g = status_job or factories.job(team, user, prompt="a brass key")
        Generation.objects.filter(pk=g.pk).update(**fields)
        return g

    due = row(due_at=now - timedelta(seconds=5))
    held = row(due_at=now - timedelta(seconds=5), lease_until=now + timedelta(seconds=30), held_by="live-worker")
    later = row(due_at=now + timedelta(seconds=60))
    expired = row(due_at=now - timedelta(seconds=5), lease_until=now - timedelta(seconds=1), held_by="dead-worker")
    done = row(factories.finished_job(team, user, prompt="a brass key, done"), due_at=now - timedelta(seconds=5))
    # Failed as "unknown outcome" (the send's answer lost), and a callback named a job id to confirm:
    to_confirm = row(lost_answer(team, user), claimed_job_id="task_0a1b2c", due_at=now - timedelta(seconds=5))
    confirming = row(lost_answer(team, user), claimed_job_id="task_3d4e5f", due_at=now - timedelta(seconds=5),
                     lease_until=now + timedelta(seconds=30), held_by="live-worker")

    taken = claim(10, "me")

    assert {g.pk for g in taken} == {due.pk, expired.pk, to_confirm.pk}
    assert all(g.held_by == "me" and g.lease_until > now for g in taken)
    assert claim(10, "someone-else") == []
    for g in (held, confirming):
        g.refresh_from_db()
        assert g.held_by == "live-worker"
    for g in (later, done):
        g.refresh_from_db()
        assert not g.held_by and g.lease_until is None


@pytest.mark.django_db(transaction=True)
def test_workers_claiming_at_once_never_take_the_same_row(team, user):
    """Six workers claim 30 due rows at the same time, a few at a time: each
    row is held by exactly one of them."""
    gens = [factories.job(team, user, prompt=f"a glass marble, number {i}") for i in range(30)]
    taken, errors = {}, []
    start = threading.Barrier(6)

    def worker(n):
        try:
            start.wait(timeout=10)
            taken[n] = []
            while got := claim(4, f"worker-{n}"):
                taken[n] += [g.pk for g in got]
        except BaseException as e:
            errors.append(e)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    every = [pk for pks in taken.values() for pk in pks]
    assert sorted(every) == sorted(g.pk for g in gens)  # each once, none left
    for n, pks in taken.items():
        assert set(Generation.objects.filter(pk__in=pks).values_list("held_by", flat=True)) <= {f"worker-{n}"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_many_threads_holds_the_providers_rate_limit(team, user, sandbox):
    """kwiki documents 10 requests a minute: sixteen threads and twelve jobs
    send ten; the other two wait for the limit instead of hitting a 429."""
    sent = Counting(sandbox)
    gens = kwiki_jobs(team, user, 12, quality="fast")
    try:
        with running(threads=16, max_steps=12) as (w, thread, outcome):
            thread.join(timeout=30)
    finally:
        sandbox.server.set_app(sent.app)
    assert outcome["steps"] == 12
    assert sent.count("/generate") == 10
    waiting = list(rows(gens).filter(status=Generation.QUEUED))
    assert len(waiting) == 2
    assert all(g.wait_reason == "rate_limit" and g.due_at > timezone.now() and g.lease_until is None
               for g in waiting)


@pytest.mark.django_db(transaction=True)
def test_a_callback_brings_the_jobs_next_step_within_a_second(team, user, sandbox, settings, client):
    """Its next poll five minutes away, the provider's callback makes the
    job due now, and a worker looking at its default interval stores the
    result within a second (issue 26)."""
    from django.urls import reverse

    settings.POLL_SECONDS = 300
    gen = factories.job(team, user, prompt="a kite over the dunes")
    with running(threads=2, interval=settings.TASK_WORKER_INTERVAL):
        wait_for(lambda: Generation.objects.get(pk=gen.pk).provider_job_id != "", 10, "the submit")
        sandbox.finish_now()
        gen.refresh_from_db()
        assert gen.is_active and gen.due_at > timezone.now() + timedelta(minutes=4)
        response = client.post(reverse("provider_callback", args=["kie", gen.callback_token]), {},
                               content_type="application/json")
        told = time.monotonic()
        assert response.status_code == 200
        wait_for(lambda: not Generation.objects.get(pk=gen.pk).is_active, 10, "the result")
        took = time.monotonic() - told
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED and gen.images.count() == 1
    assert took < 1.0, took

