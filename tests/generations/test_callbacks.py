"""A provider callback is only a hint (RELIABILITY 5)."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
import pytest

from playground.generations.pipeline import callbacks, calls, results
from playground.generations.pipeline.worker import drain
from playground.generations.models import Generation

from tests.factories import job
from tests.helpers import Counting, run_tasks, start_sandbox, step_job, use_sandbox


def due_now(gen) -> bool:
    """The job is due now: the next claim of any worker takes it."""
    gen.refresh_from_db()
    return gen.due_at <= timezone.now()


def test_the_callback_url_sent_to_the_provider_carries_an_unguessable_token(sandbox, team, user, settings):
    import json
    import sqlite3

    settings.PUBLIC_BASE_URL = "https://playground.example.com"
    gen = job(team, user, prompt="a field of sunflowers")
    step_job(gen)
    gen.refresh_from_db()
    with sqlite3.connect(sandbox.app.config.db_path) as c:
        (params,) = c.execute("SELECT params FROM tasks WHERE id=?", (gen.provider_job_id,)).fetchone()
    assert json.loads(params)["callBackUrl"] == f"https://playground.example.com/callbacks/kie/{gen.callback_token}"
    assert len(gen.callback_token) >= 40


def test_a_callback_makes_the_job_check_with_the_provider_and_changes_nothing_else(client, sandbox, team, user,
                                                                                     settings):
    settings.POLL_SECONDS = 300
    gen = job(team, user, prompt="a field of sunflowers")
    step_job(gen)  # submitted; next poll in 300 s
    assert not due_now(gen)
    before = (gen.status, gen.provider_job_id, gen.error_kind, gen.result_urls)
    # A forged body claiming success with someone else's image:
    body = {"code": 200, "data": {"taskId": gen.provider_job_id, "resultUrls": ["https://evil.example/x.png"]}}
    response = client.post(reverse("provider_callback", args=["kie", gen.callback_token]), body, content_type="application/json")
    assert response.status_code == 200
    assert due_now(gen)  # one status check, now
    assert (gen.status, gen.provider_job_id, gen.error_kind, gen.result_urls) == before
    sandbox.finish_now()
    assert step_job(gen) == "succeeded"  # the image came from record-info, not the callback
    assert gen.images.count() == 1


def test_a_callback_for_a_running_job_costs_one_update(client, sandbox, team, user, settings):
    """The web process's whole share of a callback (issue 26): one
    conditional update, no read, no task; a replay within the poll interval
    is refused by the same update and only then reads the job."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.POLL_SECONDS = 300
    gen = job(team, user, prompt="a field of poppies")
    step_job(gen)
    url = reverse("provider_callback", args=["kie", gen.callback_token])
    with CaptureQueriesContext(connection) as first:
        assert client.post(url, {}, content_type="application/json").status_code == 200
    assert [q["sql"].split()[0] for q in first.captured_queries] == ["UPDATE"]
    assert due_now(gen)
    with CaptureQueriesContext(connection) as replay:
        assert client.post(url, {}, content_type="application/json").status_code == 200
    assert [q["sql"].split()[0] for q in replay.captured_queries] == ["UPDATE", "SELECT"]


def test_a_forged_token_is_a_404(client, sandbox, team, user):
    gen = job(team, user, prompt="a field of sunflowers")
    response = client.post(reverse("provider_callback", args=["kie", "not-the-token"]), {}, content_type="application/json")
    assert response.status_code == 404
    response = client.post(reverse("provider_callback", args=["kwiki", gen.callback_token]), {}, content_type="application/json")
    assert response.status_code == 404


def test_replaying_a_callback_after_the_job_finished_changes_nothing(client, sandbox, team, user):
    gen = job(team, user, prompt="a field of sunflowers")
    run_tasks(until=gen)
    finished = (gen.status, gen.finished_at, gen.images.count())
    for _ in range(3):
        client.post(reverse("provider_callback", args=["kie", gen.callback_token]), {}, content_type="application/json")
    gen.refresh_from_db()
    assert (gen.status, gen.finished_at, gen.images.count(), gen.nudged_at) == finished + (None,)
    assert step_job(gen) == "not due"


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_delivers_the_callback_to_the_running_app(live_server, team, user, settings, tmp_path):
    import time

    sb = start_sandbox(tmp_path, callbacks=True, latency=0.2)
    try:
        use_sandbox(settings, sb)
        settings.PUBLIC_BASE_URL = live_server.url
        settings.POLL_SECONDS = 300  # no polling: only the callback can wake the job
        gen = job(team, user, prompt="a sailing ship")
        step_job(gen)
        assert not due_now(gen)
        sb.finish_now()  # the provider has finished (no waiting for its latency): it calls back
        deadline = time.monotonic() + 10
        while not due_now(gen):  # the callback arriving over HTTP, not the clock
            assert time.monotonic() < deadline, "no callback arrived"
            time.sleep(0.1)
        assert step_job(gen) == "succeeded"
    finally:
        sb.stop()


# --- replays are throttled; a lost submit answer is adopted from a callback ------


@pytest.fixture
def counted(tmp_path, settings):
    """A sandbox of its own whose requests are counted (latency set per test)."""
    made = []

    def start(**overrides):
        sb = start_sandbox(tmp_path, **overrides)
        made.append(sb)
        use_sandbox(settings, sb)
        return sb, Counting(sb)

    yield start
    for sb in made:
        sb.stop()


def run_due():
    """Run the steps of every job due now (later polls stay where they are), as a job worker does."""
    return drain(holder="test-worker")


def post_callback(client, gen, task_id):
    body = {"code": 200, "data": {"taskId": task_id, "resultUrls": ["https://example.com/forged.png"]}}
    return client.post(reverse("provider_callback", args=["kie", gen.callback_token]), body,
                       content_type="application/json")


def test_a_callback_replayed_50_times_makes_at_most_one_status_call_per_poll_interval(client, counted, team, user,
                                                                                      settings):
    sb, requests = counted(latency=3600)  # the job stays "generating"
    settings.POLL_SECONDS = 300
    gen = job(team, user, prompt="a field of sunflowers")
    step_job(gen)  # submitted; next poll in 300 s
    gen.refresh_from_db()
    before = (gen.status, gen.provider_job_id, gen.attempts)
    assert not due_now(gen)
    assert post_callback(client, gen, gen.provider_job_id).status_code == 200
    assert due_now(gen)
    for _ in range(49):
        run_due()  # whatever the replay made due runs at once
        assert post_callback(client, gen, gen.provider_job_id).status_code == 200
        assert not due_now(gen)
    run_due()
    assert requests.count("record-info") == 1
    gen.refresh_from_db()
    assert (gen.status, gen.provider_job_id, gen.attempts) == before
    assert gen.due_at > timezone.now() + timedelta(seconds=200)  # the regular poll, not cut short
    # One poll interval later, a callback may make one more check (and only one).
    Generation.objects.filter(pk=gen.pk).update(nudged_at=timezone.now() - timedelta(seconds=301))
    for _ in range(5):
        post_callback(client, gen, gen.provider_job_id)
        run_due()
    assert requests.count("record-info") == 2


def test_a_replayed_callback_does_not_cut_a_backoff_short(client, sandbox, team, user):
    gen = job(team, user, prompt="a field of sunflowers")
    step_job(gen)
    later = timezone.now() + timedelta(seconds=120)
    Generation.objects.filter(pk=gen.pk).update(phase="Server error, retrying in 120 s", wait_reason="backoff",
                                                 due_at=later)
    post_callback(client, gen, "whatever")
    gen.refresh_from_db()
    assert gen.due_at == later and gen.nudged_at is None
    assert step_job(gen) == "not due"


def killed_while_submitting(gen, sb, *, failed: bool, lease_seconds: float = -1):
    """The worker sent the job (the provider has it and will call back) and died
    before saving the answer: its lease ends lease_seconds from now (it has run
    out by default; a positive value: the worker is alive, only slow). With
    failed=True another worker has since failed it as "unknown outcome"."""
    from playground.providers.kie import KieAdapter

    Generation.objects.filter(pk=gen.pk).update(
        status=Generation.SUBMITTING, phase="submitting", held_by="worker-that-sent-it",
        lease_until=timezone.now() + timedelta(seconds=lease_seconds))
    sent = KieAdapter(base_url=sb.url + "/kie", api_key="sandbox-key").submit(
        gen.model, gen.params, callback_url=calls.callback_url(gen))
    if failed:
        gen.refresh_from_db()
        results.fail(gen, Generation.SUBMITTING, results.ProviderError("unknown_outcome", "The worker stopped."))
    gen.refresh_from_db()
    assert gen.provider_job_id == ""
    return sent.job_id


@pytest.mark.parametrize("failed", [False, True], ids=["still-submitting", "failed-unknown-outcome"])
def test_a_job_killed_while_submitting_adopts_the_task_id_from_its_callback(client, counted, team, user, failed):
    from playground.ledger.models import Entry

    sb, requests = counted(latency=0)  # the provider has finished when it calls back
    gen = job(team, user, prompt="a lighthouse on a cliff")
    task_id = killed_while_submitting(gen, sb, failed=failed)
    status_before = gen.status
    assert post_callback(client, gen, task_id).status_code == 200
    assert due_now(gen)
    assert gen.status == status_before and gen.provider_job_id == ""  # a claim only, until confirmed
    assert gen.claimed_job_id == task_id
    assert step_job(gen) == "succeeded"  # confirmed, adopted and downloaded in one step
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.provider_job_id == task_id and gen.error_kind == ""
    assert gen.images.count() == 1
    assert Entry.objects.filter(generation=gen, kind=Entry.CAPTURE, no_image=False).count() == 1
    assert requests.count("record-info") == 1  # confirmed with one status call
    assert requests.count("/generate") == 1  # never sent again
    # The late callback replayed changes nothing.
    post_callback(client, gen, task_id)
    run_tasks()
    assert Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).count() == 1 and requests.count("record-info") == 1


@pytest.mark.parametrize("failed", [False, True], ids=["still-submitting", "failed-unknown-outcome"])
def test_a_forged_callback_naming_an_unknown_task_changes_nothing(client, counted, team, user, failed):
    from playground.ledger.models import Entry

    sb, requests = counted(latency=0)
    gen = job(team, user, prompt="a row of beach huts")
    killed_while_submitting(gen, sb, failed=failed)
    before = Generation.objects.values().get(pk=gen.pk)
    post_callback(client, gen, "task_0123456789abcdef0123")
    gen.refresh_from_db()
    assert gen.claimed_job_id == "task_0123456789abcdef0123"
    assert step_job(gen) == "claim not confirmed"  # asked once; the provider does not know it
    after = Generation.objects.values().get(pk=gen.pk)
    for field in ("status", "provider_job_id", "error_kind", "error_message", "claimed_job_id"):
        assert after[field] == before[field], field
    assert after["lease_until"] is None  # dropped, and no worker holds the job
    assert requests.count("record-info") == 1
    run_tasks()
    gen.refresh_from_db()
    # Nothing adopted: the job that was sent and never confirmed ends as "unknown outcome", never sent again.
    assert (gen.status, gen.error_kind, gen.provider_job_id) == (Generation.FAILED, "unknown_outcome", "")
    assert not Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).exists()
    assert requests.count("record-info") == 1 and requests.count("/generate") == 1
    # Another generation's job id is refused without asking.
    other = job(team, user, prompt="a windmill")
    run_tasks(until=other)
    asked = requests.count("record-info")
    Generation.objects.filter(pk=gen.pk).update(nudged_at=None)
    post_callback(client, gen, other.provider_job_id)
    gen.refresh_from_db()
    assert gen.claimed_job_id == "" and step_job(gen) == "not due"
    assert requests.count("record-info") == asked
    assert gen.provider_job_id == "" and gen.status == Generation.FAILED


def test_a_live_worker_that_saves_its_answer_after_an_adoption_changes_nothing(client, counted, team, user):
    from playground.ledger.models import Entry

    sb, requests = counted(latency=0)
    gen = job(team, user, prompt="a red barn")
    task_id = killed_while_submitting(gen, sb, failed=False, lease_seconds=20)  # alive, only slow
    late = Generation.objects.get(pk=gen.pk)  # the worker's stale copy: "submitting"
    post_callback(client, gen, task_id)
    assert due_now(gen) and gen.claimed_job_id == task_id
    assert step_job(gen) == "not due"  # its worker holds it: the claim waits for the lease
    Generation.objects.filter(pk=gen.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    run_tasks()
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED and gen.provider_job_id == task_id
    # The submitting worker was only slow: its answer arrives now.
    now = timezone.now()
    assert not late.transition(Generation.SUBMITTING, status=Generation.RUNNING, provider_job_id=task_id)
    assert not calls.rescue_after_lost_lease(late, calls.Outcome("pending", job_id=task_id), now)
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED and Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_providers_own_callback_rescues_a_job_killed_while_submitting(live_server, team, user, settings, tmp_path):
    import time

    sb = start_sandbox(tmp_path, callbacks=True, latency=0.2)
    try:
        use_sandbox(settings, sb)
        settings.PUBLIC_BASE_URL = live_server.url
        gen = job(team, user, prompt="a lighthouse at night")
        task_id = killed_while_submitting(gen, sb, failed=True)
        sb.finish_now()  # the provider has finished (no waiting for its latency): it calls back
        deadline = time.monotonic() + 10
        while not gen.claimed_job_id:  # the callback arriving over HTTP, not the clock
            assert time.monotonic() < deadline, "no callback arrived"
            time.sleep(0.1)
            gen.refresh_from_db()
        assert gen.claimed_job_id == task_id and due_now(gen)
        assert step_job(gen) == "succeeded"
        gen.refresh_from_db()
        assert gen.status == Generation.SUCCEEDED, gen.error_message
        assert gen.images.count() == 1 and gen.ledger_entries.get(kind="capture").no_image is False
    finally:
        sb.stop()


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_cannot_both_win(team, user, settings, tmp_path):
    """Twenty replays at the same instant: the conditional update lets one through."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need a server database (SQLite serialises them anyway)")
    sb = start_sandbox(tmp_path, latency=3600)
    try:
        use_sandbox(settings, sb)
        requests = Counting(sb)
        settings.POLL_SECONDS = 300
        gen = job(team, user, prompt="a quiet library")
        step_job(gen)
        assert not due_now(gen)
        barrier, wins = threading.Barrier(20), []

        def replay():
            try:
                barrier.wait()
                wins.append(callbacks.nudge(Generation.objects.get(pk=gen.pk), {"data": {"taskId": gen.provider_job_id}}))
            finally:
                connection.close()

        threads = [threading.Thread(target=replay) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert wins.count(True) == 1
        assert due_now(gen)
        run_due()
        assert requests.count("record-info") == 1
    finally:
        sb.stop()


def test_a_claim_the_provider_cannot_confirm_yet_is_asked_about_again(client, counted, team, user, settings):
    """The confirming status call fails (a 503): the claim stays, and it is
    due again a lease later (no sweep), until the provider answers."""
    from playground.ledger.models import Entry

    sb, requests = counted(latency=0)
    gen = job(team, user, prompt="a stone bridge")
    task_id = killed_while_submitting(gen, sb, failed=True)
    inner, refused = sb.server.get_app(), []

    def unavailable_once(environ, start_response):
        if "record-info" in environ["PATH_INFO"] and not refused:
            refused.append(1)
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"code": 503, "msg": "maintenance"}']
        return inner(environ, start_response)

    sb.server.set_app(unavailable_once)
    post_callback(client, gen, task_id)
    assert step_job(gen) == "claim not confirmed yet"
    gen.refresh_from_db()
    assert refused and gen.claimed_job_id == task_id and gen.status == Generation.FAILED
    assert gen.lease_until is None  # no worker holds it while it waits
    assert gen.due_at > timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS - 5)
    assert run_due() == 0 and step_job(gen) == "not due"  # not before a lease has passed
    post_callback(client, gen, task_id)  # nor does a replayed callback hurry it
    assert not due_now(gen)
    # A lease later (the clock is moved): asked again, and the provider answers.
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())
    assert step_job(gen) == "succeeded"
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED and gen.provider_job_id == task_id
    assert Entry.objects.filter(generation=gen, kind=Entry.CAPTURE, no_image=False).count() == 1
    # Asked twice: once refused (served before the counter), once answered.
    assert refused == [1] and requests.count("record-info") == 1 and requests.count("/generate") == 1
