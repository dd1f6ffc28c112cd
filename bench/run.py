"""Benchmarks: print figures for the hot paths and the job pipeline.

    make bench        (or .venv/bin/python bench/run.py [--jobs 60 --workers 3])

Runs against a throw-away data directory (SQLite, embedded default, whatever
DATABASE_URL says: bench/throughput.py --database-url runs on PostgreSQL) and
a sandbox served in-process; nothing touches ./data. The last figure kills a
real job worker with SIGKILL mid-job and times its recovery (a short lease:
BENCH_LEASE_SECONDS, default 10).
Just the adapter figure: .venv/bin/python -c "import sys; sys.path[:0] = ['bench']; import run; run.adapter_requests()"
"""

import argparse
import os
import resource
import signal
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
os.environ.pop("DATABASE_URL", None)
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

    from playground.accounts.models import Membership, Team
    from playground.generations.models import Generation, GenerationImage
    from playground.sandbox.app import Config, Sandbox

    user = get_user_model().objects.create_user("bench", password="bench-pass-123")
    team = Team.objects.create(name="Bench")
    Membership.objects.create(team=team, user=user, role="owner")

    # --- 1. the polled job card and the gallery, on a gallery of N images -----
    from playground.generations.pipeline import create

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
    card_url = f"/g/{active.uuid}/"
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

    credits_review()
    # The gallery and the card poll at 100,000 generations: bench/throughput.py
    # (poll_ratio_100k, gallery_ratio_100k), beside a team of 500.

    # --- 2. pipeline throughput: real job worker processes, SQLite WAL ------
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
        create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                    params={"prompt": f"throughput {i}", "seed": i})
    enqueue_ms = (time.perf_counter() - t0) * 1000 / args.jobs
    procs = [
        subprocess.Popen([sys.executable, "-c", (
            "import resource, runpy, sys, atexit;"
            "atexit.register(lambda: print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr));"
            "sys.argv=['manage.py','run_jobs','--interval','0.1'];"
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
    elapsed = time.perf_counter() - start
    rss = []
    for p in procs:
        p.send_signal(signal.SIGTERM)  # a worker stops once its steps in flight end
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
    for g in done.exclude(status=Generation.SUCCEEDED).values("status", "error_kind", "error_message")[:5]:
        print(f"  not done: {g['status']} {g['error_kind']}: {g['error_message'][:160]}")
    if rss:
        print(f"worker peak RSS:         {max(rss) / 1024:6.1f} MiB (each: {', '.join(f'{r / 1024:.0f}' for r in rss)})")
    print(f"web process peak RSS:    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.1f} MiB "
          "(this benchmark process, incl. the sandbox)")
    server.shutdown()
    adapter_requests()
    recovery(team, user, env)


def credits_review(sizes=(500, 100_000)):
    """The Credits review page (and its CSV export) at 500 and at 100,000
    ledger entries: server time, queries, and the export's peak Python memory."""
    import tracemalloc
    import uuid as uuid_mod
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.urls import NoReverseMatch, reverse
    from django.utils import timezone

    from playground.accounts.models import Membership, Team
    from playground.ledger.models import Entry

    owner = get_user_model().objects.create_user("ledger-bench", password="bench-pass-123")
    team = Team.objects.create(name="Ledger bench")
    Membership.objects.create(team=team, user=owner, role="owner")
    members = [owner] + [get_user_model().objects.create_user(f"ledger-bench-{i}") for i in range(9)]
    for m in members[1:]:
        Membership.objects.create(team=team, user=m, role="member")
    client = Client()
    client.force_login(owner)
    try:
        export = reverse("credits_export")
    except NoReverseMatch:
        export = None
    providers = [("kie", "seedream-v4", "kie_credit"), ("kvid", "text-to-image", "kvid_credit"),
                 ("kwiki", "generate", "kwiki_credit"), ("kawai", "generations", "USD")]
    now = timezone.now()
    made = 0
    results = {}
    for size in sizes:
        rows = []
        while made < size:
            provider, model, unit = providers[made % 4]
            user = members[made % len(members)]
            when = now - timedelta(minutes=made % (20 * 24 * 60))
            g = uuid_mod.uuid4()
            common = dict(team=team, user=user, username=user.username, generation_uuid=g, provider=provider,
                          model=model, unit=unit)
            rows.append(Entry(kind="reserve", amount=Decimal("3.5"), created_at=when, **common))
            rows.append(Entry(kind="capture", amount=Decimal("3.5"), estimate=Decimal("3.5"),
                              reported=Decimal("4") if made % 3 == 0 else None,
                              basis="reported" if made % 3 == 0 else "estimate", created_at=when, **common))
            made += 2
        Entry.objects.bulk_create(rows, batch_size=2000)
        count = [0]

        def counter(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            client.get("/credits/")
        mean, p95 = timed(lambda: client.get("/credits/"), 10 if size > 1000 else 30)
        line = f"credits review page ({size:>7,} entries): mean {mean:7.2f} ms  p95 {p95:7.2f} ms  {count[0]} queries"
        if export:
            tracemalloc.start()
            response = client.get(export + "?status=all")  # every entry, not only the spend
            lines = sum(1 for _ in response.streaming_content) if getattr(response, "streaming", False) \
                else response.content.count(b"\n")
            peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
            tracemalloc.stop()
            line += f"; CSV export {lines:,} lines, peak {peak:5.1f} MiB traced"
        print(line)
        results[size] = mean
    if len(results) == 2:
        small, big = sizes
        print(f"credits review page: {big:,} / {small:,} entries = {results[big] / results[small]:.2f}x server time")


def recovery(team, user, env):
    """--- 3. recovery time after a worker is killed mid-job -------------------
    A real job worker (run_jobs) is killed with SIGKILL while it holds a job
    (inside a slow synchronous provider call); a second worker runs. The
    figure is the time from the kill until the second worker has taken the
    job over (its lease ran out: no sweep). A short lease (env
    BENCH_LEASE_SECONDS) keeps the bench quick; the bound with the defaults is
    printed too."""
    from django.conf import settings

    from playground.generations.pipeline import create
    from playground.generations.models import Generation
    from playground.sandbox.app import Config, Sandbox

    lease = int(os.environ.get("BENCH_LEASE_SECONDS", "10"))
    sandbox = Sandbox(Config(latency=lease * 3, db_path=str(TMP / "sandbox-recovery.sqlite3"), callbacks=False,
                             rate_limits={"kwiki": [(100000, 1.0)]}))
    server = make_server("127.0.0.1", 0, sandbox, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sb_url = f"http://127.0.0.1:{server.server_port}"
    env = {**env, "SANDBOX_URL": sb_url, "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": f"127.0.0.1:{server.server_port}",
           "JOB_LEASE_SECONDS": str(lease), "JOB_HEARTBEAT_SECONDS": str(max(0.5, lease / 3))}
    settings.SANDBOX_URL = sb_url
    worker = [sys.executable, "manage.py", "run_jobs", "--interval", "0.2"]
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "recovery bench", "quality": "hires"})
    procs = [subprocess.Popen(worker + ["--worker-id", "bench-doomed"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while True:
            held = Generation.objects.get(pk=gen.pk)
            if held.status == Generation.SUBMITTING and held.held_by:
                break
            if time.monotonic() > deadline:
                print("recovery: the job was never picked up")
                return
            time.sleep(0.05)
        time.sleep(1)  # well inside the provider call
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        killed = time.perf_counter()
        procs += [
            subprocess.Popen(worker + ["--worker-id", "bench-survivor"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        while True:
            now = Generation.objects.get(pk=gen.pk)
            if now.held_by != held.held_by or not now.is_active:
                break
            if time.perf_counter() - killed > lease + 120:
                print("recovery: the job was not resumed")
                return
            time.sleep(0.05)
        took = time.perf_counter() - killed
        while Generation.objects.get(pk=gen.pk).is_active and time.perf_counter() - killed < lease + 60:
            time.sleep(0.1)
        final = Generation.objects.get(pk=gen.pk)
        print(f"recovery after SIGKILL:  {took:6.1f} s until another worker took the job over "
              f"(lease {lease} s; with the defaults at most {settings.JOB_LEASE_SECONDS} s "
              f"+ {settings.TASK_WORKER_INTERVAL:g} s pickup)")
        print(f"  the job then {final.status} ({final.error_kind or 'ok'}: killed inside the provider call, "
              f"so not sent twice)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.shutdown()


def adapter_requests(n: int = 100) -> tuple[float, float]:
    """--- 4. adapter construction + one request, n times ----------------------
    What a worker pays per task for the provider call itself: build the
    adapter, make one request (a free KIE status lookup against an in-process
    sandbox). CPU time of this thread only (the sandbox's own thread is not
    counted), so it shows what the client costs: building an httpx.Client
    (its SSL context alone is ~20 ms of CPU) or reusing the process's one."""
    from playground.providers.kie import KieAdapter
    from playground.sandbox.app import Config, Sandbox

    sandbox = Sandbox(Config(keys=("bench-key",), latency=0.0, db_path=str(TMP / "adapters.sqlite3"),
                             rate_limits={"kie": [(100000, 1.0)]}, callbacks=False))
    server = make_server("127.0.0.1", 0, sandbox, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}/kie"
    try:
        KieAdapter(base_url=base_url, api_key="bench-key").key_check()  # imports, first connection
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(n):
            assert KieAdapter(base_url=base_url, api_key="bench-key").key_check()
        cpu, wall = (time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
    finally:
        server.shutdown()
    print(f"adapter construction + request: {cpu / n:6.2f} ms CPU each ({n} adapters, one request each; "
          f"wall {wall / n:.2f} ms)")
    return cpu / n, wall / n


if __name__ == "__main__":
    main()
