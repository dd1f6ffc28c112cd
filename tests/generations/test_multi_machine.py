"""A rehearsal of running on several machines: two worker groups, each with
its own data directory (nothing on disk shared), share only PostgreSQL (the
database, whose Generation rows are the job queue) and an S3-compatible
object store. They finish 300 jobs, while one worker is killed mid-run:
none lost, none sent twice, none charged twice, every image in the bucket,
and no job stepped by two workers at once.

Real processes (`manage.py run_jobs`, as serve starts them, each with its
own worker id), as a deployment runs them; there is no sweep: the killed
worker's jobs are due again once its short leases run out. The test waits
for the work to be done, with a bound."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from playground.generations.management.commands.serve import worker_command
from playground.generations.pipeline import create
from playground.generations.models import Generation, GenerationImage
from playground.ledger.models import Entry

from tests import factories
from tests.generations.conftest import BUCKET, keys
from tests.helpers import Counting, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
JOBS = int(os.environ.get("REHEARSAL_JOBS", 300))

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="several machines share PostgreSQL (SQLite is one machine's file)")


def group_env(tmp_path, name, sandbox, s3_url):
    db = connection.settings_dict
    data = tmp_path / name
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="playground.settings", DATA_DIR=str(data), TESTING="0",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        S3_BUCKET=BUCKET, S3_ENDPOINT_URL=s3_url, S3_REGION="us-east-1", S3_ACCESS_KEY_ID="test",
        S3_SECRET_ACCESS_KEY="test", SANDBOX_URL=sandbox.url, DOWNLOAD_ALLOWED_PRIVATE_HOSTS=sandbox.host,
        POLL_SECONDS="0.3", JOB_LEASE_SECONDS="3", JOB_HEARTBEAT_SECONDS="1", JOB_THREADS="8",
        TASK_WORKER_INTERVAL="0.1", SECRET_KEY="rehearsal-secret-key-" + "x" * 40,
    )
    return env


def start(env, worker_id):
    """A job worker of one machine; its output goes to a file in its data
    directory (a pipe nobody reads would fill up and block its logging)."""
    log = open(Path(env["DATA_DIR"]) / f"{worker_id}.log", "wb")
    proc = subprocess.Popen(worker_command(sys.executable, worker_id), cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log, proc.worker_id = log, worker_id
    return proc


class OneCallPerJob:
    """In front of the sandbox: holds each request about one provider job (a
    status call, a download) a little, and records any that arrives while
    another about the same job is in flight, which only two workers
    stepping the same job at once would send."""

    TASK = re.compile(r"task_[0-9a-f]+")

    def __init__(self, sandbox, hold=0.1):
        self.app, self.hold = sandbox.server.get_app(), hold
        sandbox.server.set_app(self)
        self.lock, self.in_flight, self.overlaps = threading.Lock(), set(), []

    def __call__(self, environ, start_response):
        found = self.TASK.search(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
        if not found:
            return self.app(environ, start_response)
        task = found.group()
        with self.lock:
            if task in self.in_flight:
                self.overlaps.append((task, environ.get("PATH_INFO")))
            self.in_flight.add(task)
        try:
            time.sleep(self.hold)
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.in_flight.discard(task)


def tail(proc) -> str:
    proc.log.flush()
    return Path(proc.log.name).read_text(errors="replace")[-2000:]


def test_two_worker_groups_sharing_postgres_and_object_storage_finish_300_jobs(
        transactional_db, tmp_path, s3, s3_server, settings):
    sandbox = start_sandbox(tmp_path, latency=0.5)
    counting = Counting(sandbox)
    one_call = OneCallPerJob(sandbox)
    settings.SANDBOX_URL = sandbox.url  # the test's own process creates the jobs with the same endpoint
    settings.PROVIDER_ENV = {k: {"api_key": "", "base_url": ""} for k in settings.PROVIDERS}
    user = factories.user("alice")
    team = factories.team("Alpha", owner=user)
    gens = [create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                        params={"prompt": f"a lantern on a jetty, study {i}"}) for i in range(JOBS)]
    procs = []
    try:
        for name in ("machine-a", "machine-b"):
            env = group_env(tmp_path, name, sandbox, s3_server)
            procs += [start(env, f"{name}-{n}") for n in range(2)]
        victim = procs[0]
        deadline = time.monotonic() + 300
        killed, orphans = False, []
        while time.monotonic() < deadline:
            done = Generation.objects.filter(status__in=Generation.FINAL).count()
            if not killed and done >= JOBS // 3:
                victim.send_signal(signal.SIGKILL)  # one worker of machine A dies mid-run
                victim.wait(10)
                killed = True
                # The jobs it held when it died: due again once their leases run out.
                orphans = list(Generation.objects.filter(held_by__startswith=f"{victim.worker_id}-",
                                                         lease_until__gt=timezone.now()).values_list("pk", flat=True))
            # Done, and the thumbnails that waited for other steps made too.
            if done == JOBS and not GenerationImage.objects.filter(thumbnail="").exists():
                break
            if os.environ.get("REHEARSAL_VERBOSE"):
                print(round(time.monotonic() - deadline + 300), dict(Generation.objects.values_list("status").annotate(n=Count("id"))), flush=True)
            dead = [p for p in procs if p is not victim and p.poll() is not None]
            assert not dead, tail(dead[0])
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
            p.log.close()
        sandbox.stop()
    statuses = dict(Generation.objects.values_list("status").annotate(n=Count("id")))
    assert statuses == {"succeeded": JOBS}, statuses
    assert killed
    assert not Generation.objects.filter(pk__in=orphans, held_by__startswith=f"{victim.worker_id}-").exists()
    # Every worker took its share of the jobs (each holder names its worker id).
    holders = {h.rsplit("-", 1)[0] for h in Generation.objects.values_list("held_by", flat=True)}
    assert holders <= {p.worker_id for p in procs} and len(holders) >= 3, holders
    # Never stepped by two workers at once: no request about a job while another was in flight.
    assert not one_call.overlaps, one_call.overlaps[:5]
    # Sent once each: the provider saw 300 submissions.
    assert counting.count("/generate") == JOBS or counting.count("createTask") == JOBS, \
        (counting.count("/generate"), counting.count("createTask"))
    # Charged once each: one reserve and one capture per job, no release.
    per_kind = dict(Entry.objects.values_list("kind").annotate(n=Count("id")))
    assert per_kind == {"reserve": JOBS, "capture": JOBS}, per_kind
    # Every image (and its thumbnail) is in the bucket, none on either machine's disk.
    stored = set(keys(s3))
    images = list(GenerationImage.objects.values_list("file", "thumbnail"))
    assert len(images) == JOBS
    assert all(f in stored and t in stored for f, t in images)
    assert not [p for p in tmp_path.rglob("media/**/*") if p.is_file()]
