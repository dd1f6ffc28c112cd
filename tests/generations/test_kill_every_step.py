"""RELIABILITY 2, a paid result is never lost: real job workers (`manage.py
run_jobs`) are killed with SIGKILL at every step of a KIE job with callbacks on (the
submit's answer in flight, a status call, the download, and the adoption of
a job id a callback named, its status call and its download), once or twice
in a row. Each time the job ends with its image stored and one charge, and
the provider got the job once.

There is no sweep: a dead worker's jobs are due again once its leases run
out. Nothing waits for that: once a worker is dead, the clock jumps (its
leases and the last callback's time move back), and the next worker claims
them."""

from datetime import timedelta
import os
import sqlite3
import threading

from django.utils import timezone
import pytest

from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger.models import Entry

from tests.generations.test_worker_crash import kill, start_worker, stop_all, wait_for
from tests.helpers import start_sandbox, use_sandbox

SUBMIT, STATUS, DOWNLOAD = "/generate", "record-info", "/files/"


class Gate:
    """Holds the sandbox's answer to the next request whose path contains
    the armed fragment: the provider has done the work (a submit is
    recorded, a status read) and its answer is in flight."""

    def __init__(self, sb):
        self.app = sb.server.get_app()
        sb.server.set_app(self)
        self.armed, self.lock = None, threading.Lock()
        self.arrived, self.release = threading.Event(), threading.Event()

    def arm(self, fragment):
        self.arrived.clear()
        self.release.clear()
        self.armed = fragment

    def open(self):
        self.armed = None
        self.release.set()

    def __call__(self, environ, start_response):
        with self.lock:
            held = self.armed is not None and self.armed in environ.get("PATH_INFO", "")
            if held:
                self.armed = None
        if not held:
            return self.app(environ, start_response)
        body = list(self.app(environ, start_response))
        self.arrived.set()
        self.release.wait(60)
        return body


def clock_jumps():
    """No worker is alive: a lease's time passes for everything they held.
    Returns how many leases ran out (the dead worker's)."""
    now = timezone.now()
    Generation.objects.filter(nudged_at__isnull=False).update(nudged_at=now - timedelta(seconds=3600))
    return Generation.objects.filter(lease_until__gt=now).update(lease_until=now - timedelta(seconds=1))


def finished(gen) -> bool:
    gen.refresh_from_db()
    return gen.status == Generation.SUCCEEDED or (not gen.is_active and not gen.claimed_job_id)


# Each case: where the workers die, in turn (a fresh worker each time), then a
# last worker runs the job to its end.
CASES = {
    "submit-answer-in-flight": [SUBMIT],
    "adoption-status-call": [SUBMIT, STATUS],  # issue 23, failure 1
    "adoption-status-call-twice": [SUBMIT, STATUS, STATUS],
    "adoption-download": [SUBMIT, DOWNLOAD],
    "poll-status-call": [STATUS],
    "poll-status-call-twice": [STATUS, STATUS],
    "download": [DOWNLOAD],
    "download-twice": [DOWNLOAD, DOWNLOAD],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kills", list(CASES.values()), ids=list(CASES))
def test_a_kie_job_killed_at_any_step_keeps_its_paid_result(live_server, team, user, settings, tmp_path, kills):
    sb = start_sandbox(tmp_path, callbacks=True, latency=0)
    gate = Gate(sb)
    use_sandbox(settings, sb)
    settings.PUBLIC_BASE_URL = live_server.url  # the provider calls back the app under test
    settings.MEDIA_ROOT = str(tmp_path / "media")
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a clock tower"})
    env = {"PUBLIC_BASE_URL": live_server.url}
    procs = []
    try:
        for n, fragment in enumerate(kills):
            gate.arm(fragment)
            procs.append(start_worker(sb, settings.MEDIA_ROOT, f"doomed-{n}", **env))
            assert gate.arrived.wait(60), f"no request to {fragment} reached the provider"
            kill(procs[-1])
            gate.open()
            if fragment == SUBMIT:
                # The provider has the job and says so by callback: a claim, to confirm.
                wait_for(lambda: Generation.objects.get(pk=gen.pk).claimed_job_id, 30, "the callback")
            held = Generation.objects.get(pk=gen.pk)
            assert held.is_active and held.held_by.startswith(f"doomed-{n}-")  # killed while it held the job
            assert clock_jumps() == 1
        procs.append(start_worker(sb, settings.MEDIA_ROOT, "last", **env))
        wait_for(lambda: finished(gen), 60, "the job to end")
    finally:
        gate.open()
        stop_all(sb, *procs)
    assert gen.status == Generation.SUCCEEDED, (gen.error_kind, gen.error_message)
    assert gen.images.count() == 1
    assert os.path.exists(os.path.join(settings.MEDIA_ROOT, gen.images.get().file.name))
    captures = Entry.objects.filter(generation=gen, kind=Entry.CAPTURE)
    assert captures.count() == 1 and not captures.get().no_image
    with sqlite3.connect(sb.app.config.db_path) as c:
        assert c.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1  # sent once
