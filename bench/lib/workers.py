"""The app's processes as `manage.py serve` runs them (the job workers:
serve.worker_command; the web process: serve.web_command with serve.web_env),
and the runs the figures come from (a burst of N jobs, one job)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import PROMPT, ROOT, children, free_port, median, p95, rss_kib, settle, stop, wait_healthy


class Workers:
    """The job workers `manage.py serve` starts: TASK_WORKERS `run_jobs`
    processes with its arguments (serve.worker_command)."""

    def __init__(self, env: dict, count: int, tmp: Path, name: str):
        from playground.generations.management.commands.serve import worker_command

        self.log = open(tmp / f"workers-{name}.log", "w")
        self.procs = [
            subprocess.Popen(worker_command(sys.executable, f"bench-{name}-{i + 1}"),
                             cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            for i in range(count)
        ]

    def settle(self, timeout=30.0) -> list[int]:
        """Wait until each worker has started (its RSS stops growing); its RSS then."""
        return settle(lambda: [p.pid for p in self.procs], timeout)

    def rss(self) -> list[int]:
        return [rss_kib(p.pid) for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        t = time.perf_counter()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()
        print(f"  (workers stopped in {time.perf_counter() - t:.1f} s)", flush=True)


class Web:
    """The web process as `serve` runs it (gunicorn + uvicorn's worker,
    WEB_WORKERS of them, serve.web_env's settings): the callbacks' receiver."""

    def __init__(self, env: dict, tmp: Path):
        from playground.generations.management.commands.serve import web_command, web_env

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "web.log"
        self.log = open(self.log_path, "w")
        # What serve's web_env sets over the environment (nothing today).
        extra = {k: v for k, v in web_env().items() if os.environ.get(k) != v}
        self.proc = subprocess.Popen(web_command(sys.executable, "127.0.0.1", self.port), cwd=ROOT,
                                     env={**env, **extra}, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_healthy(self.url, self.proc, self.log_path)

    def pids(self) -> list[int]:
        return children(self.proc.pid)  # gunicorn's workers

    def rss(self) -> list[int]:
        return [rss_kib(p) for p in self.pids()]

    def settle(self, timeout=30.0) -> list[int]:
        return settle(self.pids, timeout)

    def callbacks(self) -> tuple[int, int]:
        """(callbacks received, of which not answered 200), from its access log."""
        self.log.flush()
        lines = [m.group(1) for m in re.finditer(r'"POST /callbacks/\S+ HTTP/[0-9.]+" (\d+)',
                                                 self.log_path.read_text(errors="replace"))]
        return len(lines), sum(s != "200" for s in lines)

    def stop(self):
        stop(self.proc)
        self.log.close()


def wait_done(qs, timeout: float) -> float:
    from playground.generations.models import Generation

    start = time.perf_counter()
    while qs.filter(status__in=Generation.ACTIVE).exists():
        if time.perf_counter() - start > timeout:
            break
        time.sleep(0.1)
    return time.perf_counter() - start


def warm_burst(team, user, n: int, timeout: float = 120.0):
    """One job for every thread of every worker, of another model (qwen: the
    capacity run's seedream-v4 learns nothing from it), before the measured
    run: a worker's RSS after it is its working set with all its threads
    busy, and worker_rss_growth then measures what grows beyond that."""
    from playground.generations.models import Generation
    from playground.generations.pipeline import create

    ids = [create.create(team=team, owner=user, provider="kie", model="qwen",
                         params={"prompt": f"{PROMPT} warm-up {i}"}).pk for i in range(n)]
    wait_done(Generation.objects.filter(pk__in=ids), timeout)


def app_run(team, user, n: int, timeout: float, tmp: Path) -> dict:
    """N seedream-v4 jobs created in one loop; each job's times, and when the
    imitation provider had its result (its task store)."""
    from django_tasks_db.models import DBTaskResult
    from django.utils import timezone

    from playground.generations.models import Generation, GenerationImage
    from playground.generations.pipeline import create

    from .sandbox import ready_times

    since = timezone.now()
    t0 = time.perf_counter()
    created = []
    for i in range(n):
        created.append(create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                     params={"prompt": f"{PROMPT} {i}", "image_size": "square",
                                             "image_resolution": "1K", "num_inference_steps": 30, "seed": i}).pk)
    create_s = time.perf_counter() - t0
    qs = Generation.objects.filter(pk__in=created)
    wait_done(qs, max(1.0, timeout - (time.perf_counter() - t0)))
    elapsed = time.perf_counter() - t0
    # Thumbnails are made with their images; kept as a check that none is missing.
    missing = GenerationImage.objects.filter(generation_id__in=created, thumbnail="")
    while missing.exists() and time.perf_counter() - t0 < timeout:
        time.sleep(0.1)
    thumbs_s = time.perf_counter() - t0
    rows = list(qs.values("status", "error_kind", "created_at", "submitted_at", "finished_at", "nudged_at",
                          "provider_job_id"))
    ready = ready_times(tmp, [r["provider_job_id"] for r in rows])
    waits = [(r["submitted_at"] - r["created_at"]).total_seconds() for r in rows if r["submitted_at"]]
    done = [r for r in rows if r["status"] == Generation.SUCCEEDED and r["finished_at"]]
    e2e = [(r["finished_at"] - r["created_at"]).total_seconds() for r in done]
    stored = [r["finished_at"].timestamp() - ready[r["provider_job_id"]] for r in done if r["provider_job_id"] in ready]
    nudged = [r["nudged_at"].timestamp() - ready[r["provider_job_id"]] for r in rows
              if r["nudged_at"] and r["provider_job_id"] in ready]
    ok = len(done)
    failed = [r["error_kind"] for r in rows if r["status"] == Generation.FAILED]
    unfinished = sum(r["status"] in Generation.ACTIVE for r in rows)
    images = GenerationImage.objects.filter(generation_id__in=created).values("generation_id").distinct().count()
    tasks = DBTaskResult.objects.filter(enqueued_at__gte=since)
    if unfinished:
        # Done but not all: the figure is the time at which the run was cut.
        print(f"  ! {unfinished} job(s) still active after {timeout:.0f} s", flush=True)
    return {"elapsed": elapsed, "thumbs_s": thumbs_s, "create_s": create_s, "tasks_per_job": tasks.count() / max(1, n),
            "failed_tasks": tasks.filter(status="FAILED").count(), "ok": ok, "failed": len(failed),
            "failed_kinds": sorted(set(failed)), "unfinished": unfinished,
            "lost": ok - images + unfinished,  # succeeded without an image, or never finished
            "submit_wait_p95": p95(waits), "submit_wait_median": median(waits),
            "e2e_median": median(e2e), "e2e_p95": p95(e2e), "ready_to_stored_median": median(stored),
            "ready_to_nudged_median": median(nudged), "nudged": len(nudged)}


def start_job(team, user, provider: str, model: str, params: dict):
    """One job, created now (finish waits for it: several can run at once)."""
    from playground.generations.pipeline import create

    return create.create(team=team, owner=user, provider=provider, model=model, params=params)


def finish(gen, timeout: float) -> dict:
    from playground.generations.models import Generation

    wait_done(Generation.objects.filter(pk=gen.pk), timeout)
    gen.refresh_from_db()
    out = {"status": gen.status, "error": gen.error_message, "images": gen.images.count()}
    if gen.finished_at and gen.status == Generation.SUCCEEDED:
        out["e2e"] = (gen.finished_at - gen.created_at).total_seconds()
        out["polling"] = (gen.finished_at - gen.submitted_at).total_seconds() if gen.submitted_at else None
        if gen.submitted_at:
            seen = (f", last seen generating at {(gen.pending_seen_at - gen.submitted_at).total_seconds():.2f} s"
                    if gen.pending_seen_at else "")
            nudged = (f", callback at {(gen.nudged_at - gen.submitted_at).total_seconds():.2f} s"
                      if gen.nudged_at else ", no callback")
            out["timeline"] = (f"created -> submitted {(gen.submitted_at - gen.created_at).total_seconds():.2f} s; "
                               f"after the submit{seen}{nudged}, stored at {out['polling']:.2f} s; "
                               f"provider time recorded {gen.provider_seconds}")
    return out
