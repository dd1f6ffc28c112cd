"""Throughput bench (issues 10, 24, 26): the pipeline and page figures, each a
ratio of two things measured side by side in one run, under the conditions of
a deployment: callbacks on, an 80 ms round trip on every provider request.

    .venv/bin/python bench/throughput.py            # 1,000 KIE jobs at 10 s latency (several minutes)
    .venv/bin/python bench/throughput.py --quick    # 100 jobs at 3 s latency
    .venv/bin/python bench/throughput.py --only kvid,kie,rss [--database-url postgres://...] [--out FILE]
    make bench [DATABASE_URL=postgres://...]   /   make bench-throughput [QUICK=1]

What runs (bench/lib/, one module each):
- the imitation provider (sandbox): the app's own sandbox in its own process,
  with --rtt-ms added to every request (half on the way there, half on the
  way back), TCP_NODELAY on its sockets, its rate limits lifted; with
  callbacks on (the default), its KIE imitation POSTs each finished task to
  the app's PUBLIC_BASE_URL;
- the reference (reference): a plain asyncio + httpx script doing the app's
  work for N KIE jobs (submit, poll every 5 s, download, decode with Pillow,
  write to disk), at most --script-concurrency (20) requests in flight;
- the app (workers): N jobs created with pipeline.create in a throw-away
  data directory (or --database-url), worked by the job workers as `manage.py
  serve` runs them (serve.worker_command), with the web process as serve runs
  it (serve.web_command) receiving the callbacks;
- in this process (web, teams): the card poll against the login page, polls
  per page, and a team at 100,000 generations against one at 500.

Figures (bench/results.json, merged into the file if it exists; --quick:
bench/results-quick.json; with --database-url: results-postgresql.json and
results-quick-postgresql.json). Each is defined in docs/benchmarks.md:
  capacity_ratio, capacity_all_work_ratio, burst_job_p50_ratio,
  submit_wait_p95_s, kvid_e2e_ratio, kie_e2e_ratio_11s, poll_cpu_vs_login,
  poll_ratio_100k, gallery_ratio_100k (_first, _deep, _search),
  polls_per_page, worker_rss_growth, web_rss_growth_after_callbacks

Wall times depend on what else the machine runs: the load average is printed
at the start and the end; compare ratios from quiet runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import figures as F  # noqa: E402
from bench.lib.common import RUN, stop  # noqa: E402
from bench.lib.reference import reference  # noqa: E402
from bench.lib.sandbox import start_sandbox  # noqa: E402
from bench.lib.workers import Web  # noqa: E402


def options():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 jobs at 3 s latency (unless given)")
    ap.add_argument("--jobs", type=int, help="jobs in flight (default 1000, quick 100)")
    ap.add_argument("--latency", type=float, help="provider latency for the capacity run (default 10, quick 3)")
    ap.add_argument("--kvid-latency", type=float, default=10.0)
    ap.add_argument("--kie-latency", type=float, default=11.0, help="latency of the first KIE job (11 s)")
    ap.add_argument("--rtt-ms", type=float, default=80.0,
                    help="round trip added to every request to the imitation provider (ms; 0: loopback's)")
    ap.add_argument("--no-callbacks", dest="callbacks", action="store_false",
                    help="the provider sends no callbacks and no web process runs (polling only)")
    ap.add_argument("--poll", type=float, default=5.0, help="the script's poll interval (KIE documents 5 s)")
    ap.add_argument("--script-concurrency", type=int, default=20, help="the script's cap on requests in flight")
    ap.add_argument("--workers", type=int, help="job workers (default: settings.TASK_WORKERS, as serve)")
    ap.add_argument("--sandbox-workers", type=int, default=0,
                    help="0: the stdlib threaded server in one process (steadier here); N: gunicorn gthread")
    ap.add_argument("--sandbox-threads", type=int, default=32)
    ap.add_argument("--page-jobs", type=int, default=10, help="running jobs on the page for polls_per_page")
    ap.add_argument("--no-browser", dest="browser", action="store_false",
                    help="polls_per_page from the page's hx-triggers only, not counted in chromium (Playwright)")
    ap.add_argument("--web-requests", type=int, default=300, help="requests per side of poll_cpu_vs_login")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up on the app's run after this long")
    ap.add_argument("--database-url", help="e.g. postgres://postgres@127.0.0.1:5432/bench (a throw-away db: "
                    "it is migrated and filled)")
    ap.add_argument("--out", help="results file (default bench/results.json; quick: bench/results-quick.json; "
                    "PostgreSQL: results-postgresql.json, results-quick-postgresql.json)")
    ap.add_argument("--keep", action="store_true", help="keep the throw-away data directory")
    ap.add_argument("--only", help="measure only these figures, comma-separated, by name or short name: "
                    + ", ".join(F.SHORT) + ". Default: all")
    args = ap.parse_args()
    args.wanted = set(F.SELECTABLE)
    if args.only:
        args.wanted = {F.SHORT.get(name.strip(), name.strip()) for name in args.only.split(",") if name.strip()}
        unknown = args.wanted - set(F.SELECTABLE)
        if unknown:
            ap.error(f"--only: unknown figure(s) {', '.join(sorted(unknown))}")
    if not args.callbacks:
        args.wanted.discard("web_rss_growth_after_callbacks")
    return args


def main():
    args = options()
    wanted = args.wanted
    n = args.jobs or (100 if args.quick else 1000)
    latency = args.latency or (3.0 if args.quick else 10.0)
    name = ("results-quick" if args.quick else "results") + ("-postgresql" if args.database_url else "")
    out = Path(args.out) if args.out else ROOT / "bench" / f"{name}.json"

    tmp = Path(tempfile.mkdtemp(prefix="playground-throughput-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SANDBOX_URL", "POLL_SECONDS")}
    env.update(DATA_DIR=str(tmp), DJANGO_SETTINGS_MODULE="playground.settings", ALLOWED_HOSTS="testserver,127.0.0.1",
               LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    for k in [k for k in env if k.endswith(("_API_KEY", "_BASE_URL"))]:
        del env[k]  # every provider talks to the bench's sandbox
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from playground.accounts.models import Membership, Team

    print(f"throughput bench: {n} KIE jobs at {latency:g} s latency, round trip {args.rtt_ms:g} ms, callbacks "
          f"{'on' if args.callbacks else 'off'}; data in {tmp}{' (PostgreSQL)' if args.database_url else ' (SQLite)'}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(f"bench-{RUN}")
    team = Team.objects.create(name="Bench")
    Membership.objects.create(team=team, user=user, role="owner")

    figures, notes = {}, {}
    if wanted & F.WEB:
        F.web_run(args, env, tmp, figures, notes)
    run_app, run_single = bool(wanted & F.APP), bool(wanted & F.SINGLE)
    sandbox = web = workers = None
    if run_app or run_single:
        sandbox, port = start_sandbox(tmp, latency, args.sandbox_workers, args.sandbox_threads, args.rtt_ms,
                                      args.callbacks)
    try:
        if sandbox:
            root = f"http://127.0.0.1:{port}"
            base_env = {**env, "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": f"127.0.0.1:{port}"}
            if args.callbacks:
                web = Web(base_env, tmp)  # the callbacks' receiver: PUBLIC_BASE_URL
                base_env["PUBLIC_BASE_URL"] = web.url
            reference(f"{root}/lat/0", 4, 0.2, 4, tmp / "warm-up")  # the sandbox's imports, the render cache
            script = script_cpu = None
            if wanted & F.SCRIPT:
                script, script_cpu = F.script_run(args, root, n, latency, sandbox, tmp)
            if run_app:
                F.app_figures(args, settings, team, user, n, latency, root, base_env, tmp, sandbox, web, figures,
                              notes, script, script_cpu)
            if run_single:
                workers = F.single_figures(args, settings, team, user, root, base_env, tmp, web, figures, notes)
    finally:
        if workers is not None:
            workers.stop()
        if web is not None:
            web.stop()
        stop(sandbox)
    if wanted & F.TEAMS:  # last: the pipeline's figures are measured without its 100,000 rows
        F.team_run(figures, notes, cleanup=bool(args.database_url))
    F.report(figures, notes, out, tmp, args)


if __name__ == "__main__":
    main()
