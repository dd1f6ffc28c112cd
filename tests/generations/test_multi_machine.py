"""A rehearsal of running on several machines: two worker groups, each with
its own data directory (nothing on disk shared), share only PostgreSQL (the
database and the task queue) and an S3-compatible object store. They finish
300 jobs, while one worker is killed mid-run: none lost, none sent twice,
none charged twice, every image in the bucket.

Real processes (`manage.py db_worker`, `manage.py sweep --loop`), as a
deployment runs them; the test waits for the work to be done, with a bound."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

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
        POLL_SECONDS="0.3", JOB_LEASE_SECONDS="6", JOB_HEARTBEAT_SECONDS="2", JOB_SWEEP_EVERY_SECONDS="1",
        JOB_SWEEP_GRACE_SECONDS="5", SECRET_KEY="rehearsal-secret-key-" + "x" * 40,
    )
    return env


def start(env, *args):
    """A process of one machine; its output goes to a file in its data
    directory (a pipe nobody reads would fill up and block its logging)."""
    log = open(Path(env["DATA_DIR"]) / f"{args[0]}-{time.monotonic_ns()}.log", "wb")
    proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def tail(proc) -> str:
    proc.log.flush()
    return Path(proc.log.name).read_text(errors="replace")[-2000:]


def test_two_worker_groups_sharing_postgres_and_object_storage_finish_300_jobs(
        transactional_db, tmp_path, s3, s3_server, settings):
    sandbox = start_sandbox(tmp_path, latency=0.5)
    counting = Counting(sandbox)
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
            procs += [start(env, "db_worker", "--queue-name", "default", "--interval", "0.1") for _ in range(2)]
            procs.append(start(env, "sweep", "--loop"))
        victim = procs[0]
        deadline = time.monotonic() + 300
        killed = False
        while time.monotonic() < deadline:
            done = Generation.objects.filter(status__in=Generation.FINAL).count()
            if not killed and done >= JOBS // 3:
                victim.send_signal(signal.SIGKILL)  # one worker of machine A dies mid-run
                killed = True
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
