"""A real db_worker process killed with SIGKILL mid-job: nothing is lost,
nothing is submitted twice (RELIABILITY 1, 2)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from django.conf import settings as django_settings
from django.db import connection
import pytest

from playground.generations.pipeline import create, sweep
from playground.generations.models import Generation

from tests.helpers import Counting, start_sandbox, use_sandbox


def database_url():
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(sb, media_root, **extra_env):
    env = {
        **os.environ, "DATABASE_URL": database_url(), "SANDBOX_URL": sb.url, "SANDBOX_API_KEY": "sandbox-key",
        "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": sb.host, "POLL_SECONDS": "0.2", "MEDIA_ROOT": str(media_root),
        "JOB_LEASE_SECONDS": "2", "JOB_HEARTBEAT_SECONDS": "0.5", "TESTING": "false", **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"],
        cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_all(sb, *procs):
    """Kill the workers still running (their whole process groups) and the sandbox."""
    for proc in procs:
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    sb.stop()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_no_job_and_submits_nothing_twice(team, user, settings, tmp_path):
    sb = start_sandbox(tmp_path, latency=2.5)
    use_sandbox(settings, sb)
    settings.JOB_LEASE_SECONDS = 2
    settings.JOB_SWEEP_GRACE_SECONDS = 0
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a clock tower"})
    first = start_worker(sb, settings.MEDIA_ROOT)
    second = None
    try:
        wait_for(lambda: Generation.objects.get(pk=gen.pk).status == Generation.RUNNING, 60, "the job to be submitted")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        gen.refresh_from_db()
        assert gen.status == Generation.RUNNING and gen.provider_job_id
        sb.finish_now()  # the provider has finished meanwhile (no waiting for its latency)
        second = start_worker(sb, settings.MEDIA_ROOT)

        def finished():
            sweep.sweep()
            return not Generation.objects.get(pk=gen.pk).is_active

        wait_for(finished, 60, "the job to finish after the crash")
    finally:
        stop_all(sb, first, second)
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.images.count() == 1
    with sqlite3.connect(sb.app.config.db_path) as c:
        assert c.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_holding_a_job_is_replaced_once_its_lease_runs_out(team, user, settings, tmp_path):
    """Killed in the middle of a step (a slow synchronous call): its heartbeat
    stops, the sweep resumes the job after the short lease, without waiting
    for the sweep's grace, and the dead worker's task row does not stay RUNNING."""
    from django_tasks_db.models import DBTaskResult

    sb = start_sandbox(tmp_path, latency=4)
    use_sandbox(settings, sb)
    settings.JOB_LEASE_SECONDS = 2
    settings.JOB_SWEEP_GRACE_SECONDS = 600  # only the lease can free the job
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a slow sunrise", "quality": "hires"})
    first = start_worker(sb, settings.MEDIA_ROOT)
    second = None
    try:
        wait_for(lambda: Generation.objects.get(pk=gen.pk).status == Generation.SUBMITTING, 60, "the call to start")
        held = Generation.objects.get(pk=gen.pk)
        assert held.held_by and held.lease_until
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        second = start_worker(sb, settings.MEDIA_ROOT)

        def resumed():
            sweep.sweep()
            return not Generation.objects.get(pk=gen.pk).is_active

        wait_for(resumed, 30, "the job to be resumed")
        assert time.monotonic() - killed_at < 15
        row = DBTaskResult.objects.get(id=held.held_by)
        assert row.status == "FAILED" and "stopped" in row.traceback
    finally:
        stop_all(sb, first, second)
    gen.refresh_from_db()
    # It was killed while the provider had the request: not sent again (RELIABILITY 1).
    assert (gen.status, gen.error_kind) == (Generation.FAILED, "unknown_outcome")


@pytest.mark.django_db(transaction=True)
def test_a_live_workers_heartbeat_keeps_a_slow_call_held(team, user, settings, tmp_path):
    """A synchronous call longer than the lease: the heartbeat renews it, so
    the sweep never hands the job to another worker and nothing is sent twice."""
    sb = start_sandbox(tmp_path, latency=4)
    requests = Counting(sb)
    use_sandbox(settings, sb)
    settings.JOB_LEASE_SECONDS = 1
    settings.JOB_SWEEP_GRACE_SECONDS = 600  # only a lapsed lease can make the sweep step in
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a slow sunset", "quality": "hires"})
    worker = start_worker(sb, settings.MEDIA_ROOT, JOB_LEASE_SECONDS="1", JOB_HEARTBEAT_SECONDS="0.2")
    swept = 0
    try:
        def done():
            nonlocal swept
            swept += sweep.sweep()
            return not Generation.objects.get(pk=gen.pk).is_active

        wait_for(done, 60, "the job to finish")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        sb.stop()
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert swept == 0  # held all along, though the call took four times the lease
    assert requests.count("/generate") == 1
