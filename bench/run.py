"""Benchmarks: print figures for the hot paths and the job pipeline.

    make bench        (or .venv/bin/python bench/run.py [--jobs 60 --workers 3])

Runs against a throw-away data directory (SQLite, embedded default) and a
sandbox served in-process; nothing touches ./data.
"""

import argparse
import os
import resource
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="playground-bench-"))
os.environ.update(DATA_DIR=str(TMP), DJANGO_SETTINGS_MODULE="playground.settings", ALLOWED_HOSTS="testserver,127.0.0.1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass


def timed(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.mean(times), times[int(len(times) * 0.95) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--images", type=int, default=500)
    args = ap.parse_args()

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from playground.core.models import Generation, GenerationImage, Membership, Team
    from playground.sandbox.app import Config, Sandbox

    user = get_user_model().objects.create_user("bench", password="bench-pass-123")
    team = Team.objects.create(name="Bench")
    Membership.objects.create(team=team, user=user, role="owner")

    # --- 1. the polled job card and the gallery, on a gallery of N images -----
    from playground.core import jobs

    gens = [
        Generation(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": f"bench {i}"},
                   status=Generation.SUCCEEDED)
        for i in range(args.images)
    ]
    Generation.objects.bulk_create(gens)
    GenerationImage.objects.bulk_create([
        GenerationImage(generation=g, file="x.png", thumbnail="x.webp", content_type="image/png", width=1024,
                        height=1024, bytes=1000, sha256="0" * 64)
        for g in Generation.objects.all()
    ])
    active = Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                       params={"prompt": "bench active"}, status=Generation.RUNNING, phase="generating")
    client = Client()
    client.force_login(user)
    card_url = f"/g/{active.uuid}/?poll=1"
    with CaptureQueriesContext(connection) as q:
        client.get(card_url, HTTP_HX_REQUEST="true")
    card_queries = len(q.captured_queries)
    mean, p95 = timed(lambda: client.get(card_url, HTTP_HX_REQUEST="true"), 300)
    print(f"card poll fragment:      mean {mean:6.2f} ms  p95 {p95:6.2f} ms  {card_queries} queries")
    with CaptureQueriesContext(connection) as q:
        client.get("/generations/")
    gq = len(q.captured_queries)
    mean, p95 = timed(lambda: client.get("/generations/"), 50)
    print(f"gallery page ({args.images} imgs):  mean {mean:6.2f} ms  p95 {p95:6.2f} ms  {gq} queries")
    with CaptureQueriesContext(connection) as q:
        client.get("/?provider=kie&model=seedream-v4")
    pq = len(q.captured_queries)
    mean, p95 = timed(lambda: client.get("/?provider=kie&model=seedream-v4"), 50)
    print(f"playground page:         mean {mean:6.2f} ms  p95 {p95:6.2f} ms  {pq} queries")

    # --- 2. pipeline throughput: real db_worker processes, SQLite WAL --------
    sandbox = Sandbox(Config(latency=0.5, db_path=str(TMP / "sandbox.sqlite3"), callbacks=False,
                             rate_limits={"kie": [(100000, 1.0)]}))
    server = make_server("127.0.0.1", 0, sandbox, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sb_url = f"http://127.0.0.1:{server.server_port}"
    env = {**os.environ, "SANDBOX_URL": sb_url, "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": f"127.0.0.1:{server.server_port}",
           "POLL_SECONDS": "0.5"}
    settings.SANDBOX_URL = sb_url
    t0 = time.perf_counter()
    for i in range(args.jobs):
        jobs.create(team=team, owner=user, provider="kie", model="seedream-v4",
                    params={"prompt": f"throughput {i}", "seed": i})
    enqueue_ms = (time.perf_counter() - t0) * 1000 / args.jobs
    procs = [
        subprocess.Popen([sys.executable, "-c", (
            "import resource, runpy, sys, atexit;"
            "atexit.register(lambda: print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr));"
            "sys.argv=['manage.py','db_worker','--interval','0.1','--no-startup-delay','--no-reload','--batch'];"
            "runpy.run_path('manage.py', run_name='__main__')")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(args.workers)
    ]
    start = time.perf_counter()
    pending = Generation.objects.filter(params__prompt__startswith="throughput", status__in=Generation.ACTIVE)
    while pending.exists():
        time.sleep(0.2)
        if time.perf_counter() - start > 600:
            break
        if all(p.poll() is not None for p in procs):  # batch workers exit when the queue is momentarily empty
            procs = [subprocess.Popen(p.args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True) for p in procs]
    elapsed = time.perf_counter() - start
    rss = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        rss += [int(line.split()[1]) for line in err.splitlines() if line.startswith("RSS ")]
    done = Generation.objects.filter(params__prompt__startswith="throughput")
    ok = done.filter(status=Generation.SUCCEEDED).count()
    print(f"enqueue a job:           mean {enqueue_ms:6.2f} ms")
    print(f"pipeline: {ok}/{args.jobs} jobs succeeded with {args.workers} workers in {elapsed:5.1f} s "
          f"= {ok / elapsed * 60:6.1f} jobs/min (sandbox latency 0.5 s, poll 0.5 s)")
    if rss:
        print(f"worker peak RSS:         {max(rss) / 1024:6.1f} MiB (each: {', '.join(f'{r / 1024:.0f}' for r in rss)})")
    print(f"web process peak RSS:    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.1f} MiB "
          "(this benchmark process, incl. the sandbox)")
    server.shutdown()


if __name__ == "__main__":
    main()
