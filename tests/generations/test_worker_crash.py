"""Real job workers (`manage.py run_jobs`, as serve starts them) killed with
SIGKILL mid-job: nothing is lost, nothing is submitted twice (RELIABILITY 1,
2). There is no sweep: a dead worker's leases run out (a short
JOB_LEASE_SECONDS here) and its jobs are due again for the workers alive."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
import pytest

from playground.generations.management.commands.serve import worker_command
from playground.generations.models import Generation
from playground.generations.pipeline import create

from tests.helpers import Counting, start_sandbox, use_sandbox

LEASE = 2  # JOB_LEASE_SECONDS of the workers these tests start


def database_url():
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(sb, media_root, worker_id="crash-test", stdout=subprocess.DEVNULL, **extra_env):
    """A job worker process as serve starts it (serve.worker_command), on the
    test database and the sandbox, with a short lease and heartbeat."""
    env = {
        **os.environ, "DATABASE_URL": database_url(), "SANDBOX_URL": sb.url, "SANDBOX_API_KEY": "sandbox-key",
        "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": sb.host, "POLL_SECONDS": "0.2", "MEDIA_ROOT": str(media_root),
        "JOB_LEASE_SECONDS": str(LEASE), "JOB_HEARTBEAT_SECONDS": "0.5", "TASK_WORKER_INTERVAL": "0.1",
        "TESTING": "false", **extra_env,
    }
    return subprocess.Popen(
        worker_command(sys.executable, worker_id), cwd=django_settings.BASE_DIR, env=env,
        stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True, text=True,
    )


def kill(proc):
    """SIGKILL: no handler runs, nothing is let go."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop_all(sb, *procs):
    """Kill the workers still running (their whole process groups) and the sandbox."""
    for proc in procs:
        if proc and proc.poll() is None:
            kill(proc)
    sb.stop()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def rows(gens):
    return Generation.objects.filter(pk__in=[g.pk for g in gens]).order_by("pk")


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_no_job_and_submits_nothing_twice(team, user, settings, tmp_path):
    sb = start_sandbox(tmp_path, latency=2.5)
    use_sandbox(settings, sb)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a clock tower"})
    first = start_worker(sb, settings.MEDIA_ROOT, "first")
    second = None
    try:
        wait_for(lambda: Generation.objects.get(pk=gen.pk).status == Generation.RUNNING, 60, "the job to be submitted")
        kill(first)
        gen.refresh_from_db()
        assert gen.status == Generation.RUNNING and gen.provider_job_id
        sb.finish_now()  # the provider has finished meanwhile (no waiting for its latency)
        second = start_worker(sb, settings.MEDIA_ROOT, "second")
        wait_for(lambda: not Generation.objects.get(pk=gen.pk).is_active, 60, "the job to finish after the crash")
    finally:
        stop_all(sb, first, second)
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.images.count() == 1
    assert gen.lease_until is None
    with sqlite3.connect(sb.app.config.db_path) as c:
        assert c.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_the_jobs_of_a_worker_killed_mid_call_move_again_once_their_leases_run_out(team, user, settings, tmp_path):
    """The worker dies with two slow synchronous calls in flight. Another
    worker, alive all along, does not touch them while the dead one's leases
    last, and fails them as "unknown outcome" (never sent again) within
    about a lease after the kill; the job it took itself is sent once."""
    # The slow calls must outlast starting a second worker and its own job,
    # also on a loaded machine (a CI run beside a benchmark took over 6 s).
    sb = start_sandbox(tmp_path, latency=4)
    sent = Counting(sb)
    use_sandbox(settings, sb)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    slow = [create.create(team=team, owner=user, provider="kwiki", model="generate",
                          params={"prompt": f"a slow sunrise [slow], number {i}", "quality": "hires"})
            for i in range(2)]  # 24 seconds each at the provider
    first = start_worker(sb, settings.MEDIA_ROOT, "first", JOB_THREADS="2")
    second = None
    try:
        def both_in_flight():
            return (sent.count("/generate") == 2
                    and all(g.status == Generation.SUBMITTING and g.held_by.startswith("first-") for g in rows(slow)))

        wait_for(both_in_flight, 60, "the first worker to send both jobs")
        second = start_worker(sb, settings.MEDIA_ROOT, "second")
        # The first has no free thread: only the second can send this one, which shows it is up.
        own = create.create(team=team, owner=user, provider="kwiki", model="generate",
                            params={"prompt": "a quick sunrise", "quality": "hires"})
        wait_for(lambda: not Generation.objects.get(pk=own.pk).is_active, 30, "the second worker to send its job")
        assert sent.count("/generate") == 3
        assert all(g.status == Generation.SUBMITTING for g in rows(slow)), "the calls ended before the kill"
        kill(first)
        killed_at = timezone.now()
        leases = {g.pk: g.lease_until for g in rows(slow)}  # the last ones the dead heartbeat set
        assert all(lease > killed_at for lease in leases.values())
        wait_for(lambda: not rows(slow).filter(status__in=Generation.ACTIVE).exists(), 30,
                 "the dead worker's jobs to move again")
    finally:
        stop_all(sb, first, second)
    for g in rows(slow):
        assert (g.status, g.error_kind) == (Generation.FAILED, "unknown_outcome")
        assert g.held_by.startswith("second-") and g.lease_until is None
        assert g.finished_at >= leases[g.pk]  # not before the dead worker's lease ran out...
        assert (g.finished_at - killed_at).total_seconds() < LEASE + 2  # ...and about a lease after the kill
    own.refresh_from_db()
    assert own.status == Generation.SUCCEEDED and own.held_by.startswith("second-")
    # Each job reached the provider once: the two in flight were never sent again (RELIABILITY 1).
    assert sent.count("/generate") == 3


@pytest.mark.django_db(transaction=True)
def test_a_live_workers_heartbeat_keeps_a_slow_call_held(team, user, settings, tmp_path):
    """A synchronous call four times the lease: the heartbeat renews it, so
    another worker, looking for due jobs all along, never steps it (it runs
    only the one job it was free to take), and nothing is sent twice."""
    sb = start_sandbox(tmp_path, latency=4)
    requests = Counting(sb)
    use_sandbox(settings, sb)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    lease = {"JOB_LEASE_SECONDS": "1", "JOB_HEARTBEAT_SECONDS": "0.2"}
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                        params={"prompt": "a slow sunset", "quality": "hires"})
    first = start_worker(sb, settings.MEDIA_ROOT, "first", JOB_THREADS="1", **lease)
    other = None
    try:
        wait_for(lambda: Generation.objects.get(pk=gen.pk).status == Generation.SUBMITTING, 60, "the call to start")
        other = start_worker(sb, settings.MEDIA_ROOT, "other", stdout=subprocess.PIPE, **lease)
        quick = create.create(team=team, owner=user, provider="kwiki", model="generate",
                              params={"prompt": "a quick sunset", "quality": "fast"})
        holders = set()

        def done():
            row = Generation.objects.get(pk=gen.pk)
            if row.held_by:
                holders.add(row.held_by)
            return not row.is_active and not Generation.objects.get(pk=quick.pk).is_active

        wait_for(done, 60, "both jobs to finish")
        os.killpg(other.pid, signal.SIGTERM)  # a clean stop: it says how many steps it ran
        out, _ = other.communicate(timeout=30)
    finally:
        stop_all(sb, first, other)
    gen.refresh_from_db()
    quick.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert len(holders) == 1 and holders.pop().startswith("first-")  # held all along, by the first
    assert quick.status == Generation.SUCCEEDED and quick.held_by.startswith("other-")
    assert "ran 1 step(s)" in out, out  # the other worker stepped only its own job
    assert requests.count("/generate") == 2
