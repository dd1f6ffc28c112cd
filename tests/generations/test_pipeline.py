"""The job pipeline against the KIE sandbox: failures, expiry, crashes, races."""

from datetime import timedelta
import sqlite3

from django.db.models import Q
from django.utils import timezone
import pytest

from playground.generations.pipeline import callbacks, calls, create, queue, results, steps
from playground.generations.pipeline.worker import run_claimed
from playground.generations.models import Generation, GenerationImage
from playground.providers.exchange import Outcome

from tests.factories import job
from tests.helpers import run_tasks, start_sandbox, step_job, use_sandbox


def sandbox_tasks(sb, prompt):
    with sqlite3.connect(sb.app.config.db_path) as c:
        return c.execute("SELECT count(*) FROM tasks WHERE params LIKE ?", (f'%"{prompt}"%',)).fetchone()[0]


def claim_one(gen, holder):
    """This job as a worker called holder claims it: [gen] or [] when it is not due or held."""
    return queue.claim(1, holder, among=Q(pk=gen.pk))


def held_by_a_worker(gen, holder, seconds, **fields):
    """The job is held by holder, whose lease ends `seconds` from now (in the past when negative)."""
    Generation.objects.filter(pk=gen.pk).update(held_by=holder, lease_until=timezone.now() + timedelta(seconds=seconds),
                                                **fields)


def test_it_keeps_params_and_the_providers_message_when_generation_fails(sandbox, team, user):
    gen = job(team, user, prompt="a red bicycle [fail]", seed=9)
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "failed"
    assert "Generation failed" in gen.error_message
    assert gen.params == {"prompt": "a red bicycle [fail]", "seed": 9}
    assert gen.provider_job_id.startswith("task_")
    assert gen.credits_used is None  # failed jobs are not charged
    assert not gen.images.exists()


def test_it_fails_with_insufficient_credits_without_retrying(sandbox, team, user):
    gen = job(team, user, prompt="a blue kite [402]")
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind, gen.attempts) == (Generation.FAILED, "insufficient_credits", 0)
    assert gen.error_message == "Insufficient Credits"


def test_it_waits_for_the_rate_limit_hint_then_succeeds(sandbox, team, user):
    gen = job(team, user, prompt="a green tractor [429-once]")
    assert step_job(gen).startswith("retry in")
    gen.refresh_from_db()
    assert gen.status == Generation.QUEUED and gen.lease_until is None  # no worker holds it while it waits
    assert gen.phase.startswith("waiting for rate limit, retrying in")
    assert gen.due_at > timezone.now()
    assert gen.stage == "waiting"
    assert gen.note.startswith("waiting for rate limit, retrying in ")  # counts down on the card
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED


def test_it_retries_server_errors_with_backoff_then_fails_clearly(sandbox, team, user, settings):
    settings.JOB_MAX_RETRIES = 2
    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    gen = job(team, user, prompt="a paper boat [500]")
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "server_error"
    assert gen.attempts == 2
    assert sandbox_tasks(sandbox, "a paper boat [500]") == 0  # the provider never accepted it


def test_it_asks_again_when_result_urls_expired_and_fails_clearly(team, user, settings, tmp_path):
    sb = start_sandbox(tmp_path, url_ttl=-1)  # every URL is already expired
    try:
        use_sandbox(settings, sb)
        settings.JOB_BACKOFF_BASE_SECONDS = 0.05
        gen = job(team, user, prompt="an old clock tower")
        run_tasks(until=gen)
    finally:
        sb.stop()
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "download"
    assert "The result link expired before the image could be saved" in gen.error_message
    assert "HTTP" not in gen.error_message and "403" not in gen.error_message
    assert gen.attempts == 3  # asked the provider for fresh URLs three times
    assert gen.provider_job_id  # kept, so the job can be found at the provider


def test_it_gets_a_fresh_url_when_the_first_one_expired(sandbox, team, user):
    gen = job(team, user, prompt="a stone bridge")
    step_job(gen)  # submit
    gen.refresh_from_db()
    expired = Outcome("succeeded", image_urls=[f"{sandbox.url}/kie/files/{gen.provider_job_id}/0.png?expires=1&sig=x"])
    assert "retry" in results.conclude(gen, expired)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED


def test_a_job_whose_worker_died_while_submitting_is_not_sent_twice(sandbox, team, user):
    gen = job(team, user, prompt="a windmill in a field")
    # A worker took the job, moved it to "submitting" and died: nothing renews its lease.
    held_by_a_worker(gen, "worker-that-died", 20, status=Generation.SUBMITTING)
    assert step_job(gen) == "not due"  # its lease has not run out yet
    held_by_a_worker(gen, "worker-that-died", -1)  # now it has
    assert step_job(gen) == "failed: unknown_outcome"
    gen.refresh_from_db()
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "unknown_outcome"
    assert "not sent again" in gen.error_hint
    assert sandbox_tasks(sandbox, "a windmill in a field") == 0
    assert step_job(gen) == "not due"


def test_a_job_whose_worker_died_after_submitting_is_picked_up_once_its_lease_runs_out(sandbox, team, user):
    gen = job(team, user, prompt="a snowy cabin")
    step_job(gen)  # submitted; the provider job id is saved
    # A worker claimed its poll and died.
    held_by_a_worker(gen, "worker-that-died", -1, due_at=timezone.now() - timedelta(minutes=5))
    taken = claim_one(gen, "worker-b")
    assert [g.pk for g in taken] == [gen.pk]
    assert claim_one(gen, "worker-c") == []  # claimed once, not by every worker that looks
    gen.refresh_from_db()
    assert gen.held_by == "worker-b" and gen.lease_until > timezone.now()
    run_claimed(taken[0], {})
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    assert sandbox_tasks(sandbox, "a snowy cabin") == 1  # submitted exactly once


def test_no_worker_takes_a_job_while_its_worker_holds_it(sandbox, team, user):
    gen = job(team, user, prompt="a lantern")
    held_by_a_worker(gen, "live-worker", 300, status=Generation.SUBMITTING,
                     due_at=timezone.now() - timedelta(hours=1))
    assert queue.claim(10, "other-worker") == []
    assert step_job(gen) == "not due"
    gen.refresh_from_db()
    assert (gen.status, gen.held_by) == (Generation.SUBMITTING, "live-worker")  # not failed as "unknown outcome"


def test_two_workers_finishing_the_same_job_store_one_set_of_images(sandbox, team, user, settings, tmp_path):
    gen = job(team, user, prompt="a yellow tram")
    step_job(gen)
    first = Generation.objects.get(pk=gen.pk)
    second = Generation.objects.get(pk=gen.pk)
    outcome = first.adapter_class(base_url=sandbox.url + "/kie", api_key="sandbox-key")
    sandbox.finish_now()  # the provider has finished generating
    result = outcome.check("seedream-v4", first.provider_job_id)
    assert result.state == "succeeded"
    assert results.conclude(first, result) == "succeeded"
    assert results.conclude(second, result) in ("another worker finished it", "job changed")
    assert GenerationImage.objects.filter(generation=gen).count() == 1
    files = list((tmp_path / "media" / "generations").rglob("*.png"))
    assert len(files) == 1  # the loser's download was deleted


def test_a_succeeded_job_is_not_touched_by_a_late_step(sandbox, team, user):
    gen = job(team, user, prompt="a teapot")
    run_tasks(until=gen)
    finished_at = gen.finished_at
    assert step_job(gen) == "not due"  # a finished job is never claimed
    assert steps.step(Generation.objects.get(pk=gen.pk)) == "nothing to do"  # nor stepped by a stale claim
    gen.refresh_from_db()
    assert gen.finished_at == finished_at


def test_an_unreachable_provider_is_retried_then_reported(team, user, settings):
    settings.SANDBOX_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.PROVIDER_ENV = {k: {"api_key": "", "base_url": ""} for k in settings.PROVIDERS}
    settings.JOB_MAX_RETRIES = 1
    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    gen = job(team, user, prompt="a mountain lake")
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.error_kind == "unavailable"
    assert "Could not connect" in gen.error_message


@pytest.mark.parametrize("prompt,kind", [("a tulip field [455]", "unavailable"), ("a tulip field [creation-fail]", "failed")])
def test_it_maps_provider_outcomes_to_clear_errors(sandbox, team, user, settings, prompt, kind):
    settings.JOB_MAX_RETRIES = 0
    gen = job(team, user, prompt=prompt)
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, kind)
    assert gen.error_message


class WorkerDied(BaseException):
    """Stands for the process dying at a given line (not an Exception, so no
    handler in the pipeline can catch it)."""


def test_inline_images_survive_a_worker_dying_before_the_download_step(sandbox, team, user, monkeypatch):
    gen = create.create(team=team, owner=user, provider="kawai", model="generations",
                      params={"prompt": "two lemons", "n": 2, "response_format": "b64_json"})
    real_conclude = results.conclude

    def die(*args, **kwargs):
        raise WorkerDied()

    monkeypatch.setattr(calls, "conclude", die)
    with pytest.raises(WorkerDied):
        step_job(gen, holder="worker-that-dies")
    gen.refresh_from_db()
    assert gen.status == Generation.RUNNING
    assert [u.split("/")[0] for u in gen.result_urls] == ["staged:staging"] * 2  # the bytes are already stored
    assert gen.held_by == "worker-that-dies" and gen.lease_until > timezone.now()
    monkeypatch.setattr(calls, "conclude", real_conclude)
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())  # its download is due...
    assert step_job(gen) == "not due"  # ...but held until the dead worker's lease runs out
    held_by_a_worker(gen, "worker-that-dies", -1, due_at=timezone.now())  # it has (the clock is moved)
    assert step_job(gen) == "succeeded"
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED
    assert gen.images.count() == 2


def test_a_provider_cannot_point_a_staged_image_at_another_job(sandbox, team, user):
    gen = job(team, user, prompt="a plum")
    step_job(gen)
    gen.refresh_from_db()
    outcome = Outcome("succeeded", image_urls=["staged:generations/other-team/secret.png"])
    results.conclude(gen, outcome)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "download")


def test_a_dropped_connection_during_a_status_check_is_retried(sandbox, team, user, settings, monkeypatch):
    import httpx

    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    gen = job(team, user, prompt="a copper kettle")
    step_job(gen)
    drops = {"n": 0}
    real = httpx.Client.request

    def flaky(self, method, url, *args, **kwargs):
        if "record-info" in str(url) and drops["n"] < 2:
            drops["n"] += 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "request", flaky)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED and drops["n"] == 2


def test_a_storage_failure_after_the_provider_finished_is_retried_not_failed(sandbox, team, user, settings, monkeypatch):
    from django.core.files.storage import default_storage

    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    gen = job(team, user, prompt="a brass compass")
    real_save = default_storage.save
    state = {"failures": 1}

    def disk_full(name, content, *a, **kw):
        if state["failures"]:
            state["failures"] -= 1
            raise OSError(28, "No space left on device")
        return real_save(name, content, *a, **kw)

    monkeypatch.setattr(default_storage, "save", disk_full)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    assert gen.attempts == 1 and gen.images.count() == 1


def test_an_internal_error_before_sending_fails_as_not_sent(sandbox, team, user, monkeypatch):
    """Nothing reached the provider: the job says so, never "may have reached
    the provider" (RELIABILITY 11), and it is not sent again by itself."""
    gen = job(team, user, prompt="a glass marble")

    def broken(*a, **kw):
        raise RuntimeError("bug")

    monkeypatch.setattr(calls, "callback_url", broken)
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "not_sent")
    assert "Nothing was sent" in gen.error_message
    assert set(gen.ledger_entries.values_list("kind", flat=True)) == {"reserve", "release"}


def test_an_internal_error_after_sending_is_never_resent(sandbox, team, user, monkeypatch):
    """The request went out and then something in the playground failed: the
    provider may have the job, so it is not sent again."""
    from playground.providers.kie import KieAdapter

    gen = job(team, user, prompt="a glass marble")
    real = KieAdapter.envelope

    def broken(self, *a, **kw):  # the provider's answer arrived; reading it fails
        real(self, *a, **kw)
        raise RuntimeError("bug")

    monkeypatch.setattr(KieAdapter, "envelope", broken)
    run_tasks(until=gen)
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "unknown_outcome")


def test_a_replayed_callback_does_not_cut_a_rate_limit_wait_short(sandbox, team, user):
    gen = job(team, user, prompt="a silver spoon")
    step_job(gen)
    gen.refresh_from_db()
    wait_until = timezone.now() + timedelta(seconds=60)
    Generation.objects.filter(pk=gen.pk).update(phase="waiting for rate limit, retrying in 60 s",
                                                 wait_reason="rate_limit", due_at=wait_until)
    gen.refresh_from_db()
    assert callbacks.nudge(gen) is False
    gen.refresh_from_db()
    assert gen.due_at == wait_until
    assert step_job(gen) == "not due"


def test_a_transient_download_failure_is_retried_not_fatal(sandbox, team, user, settings):
    """The provider has made (and charged for) the image: a 503 from its CDN is retried."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    png = __import__("io").BytesIO()
    __import__("PIL.Image").Image.new("RGB", (20, 20), "olive").save(png, "PNG")
    hits = []

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if len(hits) == 1:
                self.send_response(503)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(png.getvalue())

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_port}"
    settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS = [sandbox.host, host]
    try:
        gen = create.create(team=team, owner=user, provider="kwiki", model="generate", params={"prompt": "an olive"})
        Generation.objects.filter(pk=gen.pk).update(status=Generation.RUNNING, result_urls=[f"http://{host}/x.png"])
        gen.refresh_from_db()
        assert "retry" in calls.poll(gen)
        run_tasks(until=gen)
    finally:
        server.shutdown()
    assert gen.status == Generation.SUCCEEDED and len(hits) == 2


def test_a_result_arriving_after_the_lease_ran_out_is_taken_back(sandbox, team, user, monkeypatch):
    """A slow provider answers after the worker's lease ran out and another
    worker failed the job as 'unknown outcome': the known result wins and
    nothing paid is thrown away."""
    from playground.providers.kie import KieAdapter

    gen = job(team, user, prompt="a slow snail")
    real_submit = KieAdapter.submit

    def slow_submit(self, *args, **kwargs):
        outcome = real_submit(self, *args, **kwargs)
        # Meanwhile the lease ran out and another worker gave up on the job:
        Generation.objects.filter(pk=gen.pk).update(
            status=Generation.FAILED, error_kind="unknown_outcome", error_message="worker vanished")
        return outcome

    monkeypatch.setattr(KieAdapter, "submit", slow_submit)
    step_job(gen)
    monkeypatch.setattr(KieAdapter, "submit", real_submit)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED and gen.error_kind == ""
    assert sandbox_tasks(sandbox, "a slow snail") == 1


def test_a_good_status_answer_resets_the_retry_budget(sandbox, team, user, settings):
    gen = job(team, user, prompt="a lighthouse keeper's cat")
    step_job(gen)
    Generation.objects.filter(pk=gen.pk).update(attempts=5)
    gen.refresh_from_db()
    assert calls.poll(gen).startswith("poll in")
    gen.refresh_from_db()
    assert gen.attempts == 0


def test_a_rate_limit_hint_longer_than_the_backoff_cap_is_honoured(sandbox, team, user, settings):
    from playground.providers.errors import ProviderError

    settings.JOB_BACKOFF_CAP_SECONDS = 300
    gen = job(team, user, prompt="an hourglass")
    Generation.objects.filter(pk=gen.pk).update(status=Generation.SUBMITTING)
    gen.refresh_from_db()
    results.retry_later(gen, Generation.SUBMITTING, ProviderError("rate_limited", "hourly limit", retry_after=3000),
                     back_to=Generation.QUEUED)
    gen.refresh_from_db()
    assert gen.status == Generation.QUEUED and gen.attempts == 0
    assert (gen.due_at - timezone.now()).total_seconds() > 2900
    settings.JOB_RATE_LIMIT_MAX_WAIT_SECONDS = 600  # beyond the allowed total wait: fail clearly
    Generation.objects.filter(pk=gen.pk).update(status=Generation.SUBMITTING)
    gen.refresh_from_db()
    results.retry_later(gen, Generation.SUBMITTING, ProviderError("rate_limited", "hourly limit", retry_after=3000))
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "rate_limited")


# --- recovery: a short lease, renewed by a heartbeat while the worker lives --------


def test_the_default_lease_lets_a_dead_workers_job_continue_within_a_minute(settings):
    # Once the lease runs out the row is due: the next claim of any idle worker takes it.
    assert settings.JOB_LEASE_SECONDS + settings.TASK_WORKER_INTERVAL <= 60
    assert 0 < settings.JOB_HEARTBEAT_SECONDS < settings.JOB_LEASE_SECONDS / 2


def test_a_worker_that_dies_mid_step_is_resumed_once_its_short_lease_passes(sandbox, team, user, settings):
    gen = job(team, user, prompt="a foggy pier")
    step_job(gen)  # submitted
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())
    assert claim_one(gen, "worker-that-dies")  # it takes the poll step, then dies: no heartbeat
    gen.refresh_from_db()
    assert gen.lease_until <= timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    assert claim_one(gen, "worker-b") == []  # held: its lease has not run out
    # The lease runs out, JOB_LEASE_SECONDS later (the clock is moved).
    held_by_a_worker(gen, "worker-that-dies", -1)
    taken = claim_one(gen, "worker-b")
    assert taken and claim_one(gen, "worker-c") == []  # once
    assert queue.renew([gen.pk], "worker-that-dies") == 0  # a late heartbeat of the dead one holds nothing
    run_claimed(taken[0], {})
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    assert sandbox_tasks(sandbox, "a foggy pier") == 1


def test_a_live_workers_heartbeat_keeps_its_job_held(sandbox, team, user, settings):
    gen = job(team, user, prompt="a long exposure of a river")
    assert claim_one(gen, "live-worker")
    for _ in range(5):  # each beat comes before the lease runs out
        held_by_a_worker(gen, "live-worker", 1)
        assert queue.renew([gen.pk], "live-worker") == 1
        gen.refresh_from_db()
        assert gen.lease_until > timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS - 5)
        assert queue.claim(10, "other-worker") == []
    # Once another worker has taken the job over, the old heartbeat stops holding it.
    held_by_a_worker(gen, "live-worker", -1)
    assert claim_one(gen, "other-worker")
    assert queue.renew([gen.pk], "live-worker") == 0
    gen.refresh_from_db()
    assert gen.held_by == "other-worker"
