"""The measured runs turned into figures, their targets (issue 26's table)
and the report. docs/benchmarks.md says what each figure compares."""

from __future__ import annotations

import json
import os
import shutil
import time

from .common import PROMPT, ROOT, SANDBOX_KEY, cpu_seconds, mib, tree_cpu_seconds
from .reference import reference
from .sandbox import NO_CALLBACK, callbacks_unsent
from .workers import Workers, app_run, finish, start_job, warm_burst

# figure: (target as printed, limit); printed in this order.
TARGETS = {
    "capacity_ratio": ("<= 1.5", 1.5),
    "capacity_all_work_ratio": ("<= 2.0", 2.0),
    "burst_job_p50_ratio": ("<= 1.5", 1.5),
    "submit_wait_p95_s": ("<= 2 s", 2.0),
    "kvid_e2e_ratio": ("<= 1.10", 1.10),
    "kie_e2e_ratio_11s": ("<= 1.15", 1.15),
    "poll_cpu_vs_login": ("<= 1.5", 1.5),
    "poll_ratio_100k": ("<= 1.5", 1.5),
    "gallery_ratio_100k": ("<= 1.5", 1.5),
    "gallery_ratio_100k_first": ("<= 1.5", 1.5),
    "gallery_ratio_100k_deep": ("<= 1.5", 1.5),
    "gallery_ratio_100k_search": ("<= 1.5", 1.5),
    "polls_per_page": ("1", 1.0),
    "worker_rss_growth": ("<= 1.1", 1.1),
    "web_rss_growth_after_callbacks": ("<= 1.2", 1.2),
}
# --only's short names; the gallery's three parts come with gallery_ratio_100k.
SHORT = {"capacity": "capacity_ratio", "all_work": "capacity_all_work_ratio", "burst": "burst_job_p50_ratio",
         "submit": "submit_wait_p95_s", "kvid": "kvid_e2e_ratio", "kie": "kie_e2e_ratio_11s",
         "poll_cpu": "poll_cpu_vs_login", "poll_100k": "poll_ratio_100k", "gallery": "gallery_ratio_100k",
         "polls": "polls_per_page", "rss": "worker_rss_growth", "web_rss": "web_rss_growth_after_callbacks"}
SELECTABLE = [k for k in TARGETS if not k.startswith("gallery_ratio_100k_")]
SCRIPT = {"capacity_ratio", "capacity_all_work_ratio"}
APP = SCRIPT | {"burst_job_p50_ratio", "submit_wait_p95_s", "worker_rss_growth", "web_rss_growth_after_callbacks"}
SINGLE = {"kvid_e2e_ratio", "kie_e2e_ratio_11s"}
WEB = {"poll_cpu_vs_login", "polls_per_page"}
TEAMS = {"poll_ratio_100k", "gallery_ratio_100k"}


def web_run(args, env, tmp, figures, notes):
    from .web import web_figures

    w = web_figures(args.page_jobs, args.web_requests, 5000, env if args.browser else None, tmp)
    figures["poll_cpu_vs_login"] = w["poll_cpu_vs_login"]
    figures["polls_per_page"] = w["polls_per_page"]
    notes["poll_cpu_vs_login"] = (f"{w['poll_cpu_ms']:.2f} / {w['login_cpu_ms']:.2f} ms CPU per request, "
                                  f"team of {w['team_size']:,} generations")
    notes["polls_per_page"] = (f"{args.page_jobs} running jobs, {w['pollers']} pollers in the page"
                               + (f" ({w['counted']:.1f}/s from its hx-triggers)" if w["browser"] is not None
                                  else " (from its hx-triggers)"))
    print(f"web: card poll {w['poll_cpu_ms']:.2f} ms CPU, login page {w['login_cpu_ms']:.2f} ms CPU (team of "
          f"{w['team_size']:,}); page with {args.page_jobs} running jobs polls {w['counted']:.1f}/s (hx-triggers)"
          + (f", {w['browser']:.1f}/s counted in chromium" if w["browser"] is not None else ""), flush=True)


def team_run(figures, notes, cleanup: bool):
    from .teams import team_figures

    print("teams at 500 and 100,000 generations:", flush=True)
    t = team_figures(cleanup=cleanup)
    figures["poll_ratio_100k"] = t["poll"]
    notes["poll_ratio_100k"] = f"{t['ms'][(100_000, 'poll')]:.2f} / {t['ms'][(500, 'poll')]:.2f} ms median"
    for key, name in (("first", "first page"), ("deep", "deep page"), ("search", "no-match search")):
        figures[f"gallery_ratio_100k_{key}"] = t[name]
        notes[f"gallery_ratio_100k_{key}"] = f"{t['ms'][(100_000, name)]:.2f} / {t['ms'][(500, name)]:.2f} ms median"
    figures["gallery_ratio_100k"] = max(t["first page"], t["deep page"], t["no-match search"])
    notes["gallery_ratio_100k"] = "the largest of the three below"


def script_run(args, root, n, latency, sandbox, tmp):
    """The reference script (its result and its own CPU)."""
    sb_cpu, script_cpu = tree_cpu_seconds(sandbox.pid), time.process_time()
    script = reference(f"{root}/lat/{latency:g}", n, args.poll, args.script_concurrency, tmp / "script")
    sb_cpu, script_cpu = tree_cpu_seconds(sandbox.pid) - sb_cpu, time.process_time() - script_cpu
    print(f"script: {script['ok']}/{n} done in {script['elapsed']:.1f} s ({script['failed']} failed, "
          f"{script['retries']} retried requests; submit p95 {script['submit_wait_p95']:.2f} s; "
          f"{args.script_concurrency} requests in flight at most)", flush=True)
    print(f"  CPU: script {script_cpu:.1f} s; sandbox {script['requests']} requests, {sb_cpu:.1f} s "
          f"({sb_cpu / max(1, script['requests']) * 1000:.2f} ms a request, "
          f"{script['requests'] / script['elapsed']:.0f} requests/s on average)", flush=True)
    return script, script_cpu


def callbacks_delivered(tmp, web, timeout: float = 120.0) -> None:
    """Wait until the sandbox has taken up every due callback; the web's RSS then settles."""
    deadline = time.monotonic() + timeout
    while web is not None and callbacks_unsent(tmp) and time.monotonic() < deadline:
        time.sleep(0.25)


def app_figures(args, settings, team, user, n, latency, root, base_env, tmp, sandbox, web, figures, notes, script,
                script_cpu):
    """The app: its job workers (stopped at the end), the web process receiving the callbacks."""
    count = args.workers or settings.TASK_WORKERS
    workers = Workers({**base_env, "SANDBOX_URL": f"{root}/lat/{latency:g}"}, count, tmp, "capacity")
    t = time.perf_counter()
    rss_cold = workers.settle()
    web_cold = web.rss() if web else []
    warm_burst(team, user, count * settings.JOB_THREADS)
    callbacks_delivered(tmp, web)
    rss_start = workers.settle()
    web_start = web.settle() if web else []
    calls_before = web.callbacks() if web else (0, 0)
    worker_cpu = sum(cpu_seconds(p.pid) for p in workers.procs)
    print(f"  (workers started in {time.perf_counter() - t:.1f} s; RSS (MiB) at start {mib(rss_cold)}, after a "
          f"first burst of {count * settings.JOB_THREADS} jobs {mib(rss_start)}"
          + (f"; web workers {mib(web_cold)}, then {mib(web_start)} after {calls_before[0]} callbacks" if web else "")
          + ")", flush=True)
    sb_cpu, web_cpu = tree_cpu_seconds(sandbox.pid), tree_cpu_seconds(web.proc.pid) if web else 0.0
    app = app_run(team, user, n, args.timeout, tmp)
    sb_cpu = tree_cpu_seconds(sandbox.pid) - sb_cpu
    worker_cpu = sum(cpu_seconds(p.pid) for p in workers.procs) - worker_cpu
    rss_busy = workers.rss()  # as the last job ends
    rss_end = workers.settle()  # once idle
    alive = workers.alive()
    workers.stop()
    callbacks_delivered(tmp, web)
    web_end = web.settle() if web else []
    web_cpu = tree_cpu_seconds(web.proc.pid) - web_cpu if web else 0.0
    calls = web.callbacks() if web else (0, 0)
    calls = (calls[0] - calls_before[0], calls[1] - calls_before[1])
    print(f"app: {app['ok']}/{n} done in {app['elapsed']:.1f} s (thumbnails all made at {app['thumbs_s']:.1f} s) "
          f"with {count} workers ({app['failed']} failed {app['failed_kinds'] or ''}, {app['lost']} lost; "
          f"creating took {app['create_s']:.1f} s)", flush=True)
    print(f"  a job: created -> stored median {app['e2e_median']:.1f} s (p95 {app['e2e_p95']:.1f}) at {latency:g} s "
          f"latency; created -> submitted median {app['submit_wait_median']:.1f} s, p95 {app['submit_wait_p95']:.1f}; "
          f"result ready at the provider -> stored median {app['ready_to_stored_median']:.1f} s; "
          f"ready -> callback taken median {app['ready_to_nudged_median']:.1f} s ({app['nudged']} jobs)", flush=True)
    print(f"  {app['tasks_per_job']:.2f} task rows per job ({app['failed_tasks']} failed task rows)", flush=True)
    print(f"  CPU during the app's run: workers {worker_cpu:.1f} s in all ({worker_cpu / n * 1000:.1f} ms a job"
          + (f"; the script: {script_cpu / n * 1000:.1f} ms a job" if script else "") + f"), sandbox {sb_cpu:.1f} s"
          + (f", web {web_cpu:.1f} s for {calls[0]} callbacks ({web_cpu / max(1, calls[0]) * 1000:.1f} ms each; "
             f"{calls[1]} not answered 200)" if web else ""), flush=True)
    growth = [sum(rss_end) / sum(rss_start)] if all(rss_start) and all(rss_end) else []
    each = [round(e / s, 2) for s, e in zip(rss_start, rss_end) if s and e]
    print(f"worker RSS (MiB) after the first burst {mib(rss_start)}, as the last job ended {mib(rss_busy)}, "
          f"once idle {mib(rss_end)}{'' if alive else ' (a worker died)'}", flush=True)
    if web:
        print(f"web worker RSS (MiB) at start {mib(web_cold)}, after the first burst's callbacks {mib(web_start)}, "
              f"after the run's {calls[0]} callbacks {mib(web_end)}", flush=True)
    if script:
        figures["capacity_ratio"] = app["elapsed"] / script["elapsed"]
        figures["capacity_all_work_ratio"] = app["thumbs_s"] / script["elapsed"]
        notes["capacity_all_work_ratio"] = f"last thumbnail at {app['thumbs_s']:.1f} s / {script['elapsed']:.1f} s"
        notes["capacity_ratio"] = (f"{app['elapsed']:.1f} s / {script['elapsed']:.1f} s, {n} jobs at {latency:g} s; "
                                   f"app {app['ok']} ok, {app['failed']} failed, {app['lost']} lost; CPU a job "
                                   f"{worker_cpu / n * 1000:.1f} / {script_cpu / n * 1000:.1f} ms")
    figures["burst_job_p50_ratio"] = app["e2e_median"] / latency
    notes["burst_job_p50_ratio"] = (f"{app['e2e_median']:.1f} s / {latency:g} s; ready -> stored median "
                                    f"{app['ready_to_stored_median']:.1f} s")
    figures["submit_wait_p95_s"] = app["submit_wait_p95"]
    notes["submit_wait_p95_s"] = f"{n} in flight; median {app['submit_wait_median']:.1f} s"
    figures["worker_rss_growth"] = max(growth) if growth else float("nan")
    notes["worker_rss_growth"] = (f"{count} workers together, after {n} jobs / after a first burst of "
                                  f"{count * settings.JOB_THREADS}; each {each}; cold start "
                                  f"{sum(rss_cold) / 1024:.0f} MiB, after the burst {sum(rss_start) / 1024:.0f} MiB")
    if web and all(web_start) and all(web_end) and len(web_start) == len(web_end):
        figures["web_rss_growth_after_callbacks"] = sum(web_end) / sum(web_start)
        notes["web_rss_growth_after_callbacks"] = (f"{sum(web_end) / 1024:.0f} / {sum(web_start) / 1024:.0f} MiB, "
                                                   f"{len(web_end)} web workers, {calls[0]} callbacks")


def single_figures(args, settings, team, user, root, base_env, tmp, web, figures, notes):
    """One kvid job and the first KIE job of models with no timing history, at
    once on idle workers (returns the workers, still running)."""
    from playground.generations.models import Generation

    count = args.workers or settings.TASK_WORKERS
    workers = Workers({**base_env, "SANDBOX_URL": f"{root}/lat/{args.kie_latency:g}",
                       "KVID_API_KEY": SANDBOX_KEY, "KVID_BASE_URL": f"{root}/lat/{args.kvid_latency:g}/kvid"},
                      count, tmp, "single")
    workers.settle()
    # The first job of a model: no timing history (a reused database may have some).
    fresh = ["nano-banana"] + (["flux-kontext"] if web else [])
    forgot = Generation.objects.filter(provider="kie", model__in=fresh, provider_seconds__isnull=False).update(
        provider_seconds=None)
    if forgot:
        print(f"  (forgot {forgot} timing samples of {', '.join(fresh)} left in the database)", flush=True)
    runs = {"kvid": (start_job(team, user, "kvid", "text-to-image", {"prompt": f"{PROMPT} kvid"}), args.kvid_latency),
            # The figure: polling only (the provider is told not to call back).
            "kie": (start_job(team, user, "kie", "nano-banana", {"prompt": f"{PROMPT} kie first {NO_CALLBACK}"}),
                    args.kie_latency)}
    if web:  # beside it, a first job whose callback reaches the app
        runs["kie+callback"] = (start_job(team, user, "kie", "flux-kontext", {"prompt": f"{PROMPT} kie callback"}),
                                args.kie_latency)
    done = {name: finish(gen, lat * 5 + 60) for name, (gen, lat) in runs.items()}
    for name, r in done.items():
        gen, lat = runs[name]
        print(f"single {name} job ({gen.model}) at {lat:g} s: {r['status']}, created -> stored "
              f"{r.get('e2e', float('nan')):.2f} s, submitted -> stored {r.get('polling') or float('nan'):.2f} s "
              f"{r['error'] or ''}", flush=True)
        if r.get("timeline"):
            print(f"  {r['timeline']}", flush=True)
    kvid, kie = done["kvid"], done["kie"]
    figures["kvid_e2e_ratio"] = kvid["e2e"] / args.kvid_latency if "e2e" in kvid else float("nan")
    figures["kie_e2e_ratio_11s"] = kie["polling"] / args.kie_latency if kie.get("polling") else float("nan")
    notes["kvid_e2e_ratio"] = f"{kvid.get('e2e', float('nan')):.2f} s at {args.kvid_latency:g} s latency"
    notes["kie_e2e_ratio_11s"] = (f"{kie.get('polling') or float('nan'):.2f} s at {args.kie_latency:g} s latency, "
                                  f"first nano-banana job, polling only")
    if "kie+callback" in done:
        with_callback = (done["kie+callback"].get("polling") or float("nan")) / args.kie_latency
        notes["kie_e2e_ratio_11s"] += f"; with its callback (first flux-kontext job): {with_callback:.2f}"
    return workers


def report(figures, notes, out, tmp, args):
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs"
          f"{' (other work on the machine: the times are noisy)' if load[1] > (os.cpu_count() or 1) * 0.75 else ''}")
    print(f"{'figure':<31} {'value':>7}  {'target':<7}  detail")
    for key, (target, limit) in TARGETS.items():
        if key not in figures:
            continue
        value = figures[key]
        mark = "ok" if value <= limit else "  "
        print(f"{key:<31} {value:>7.2f}  {target:<7}{mark:>3} {notes.get(key, '')}")
    existing = {}
    if out.exists():
        try:
            existing = json.loads(out.read_text())
        except ValueError:
            existing = {}
    existing.update({k: (round(v, 3) if v == v else None) for k, v in figures.items()})
    out.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"data kept in {tmp}")
