"""Requests in flight that one web process holds while the OpenAI-compatible
API waits on a slow provider (issue 12).

    .venv/bin/python bench/api_wait.py                  # 200 requests, 10 s provider latency
    .venv/bin/python bench/api_wait.py --requests 50 --latency 5

What runs (helpers from bench/lib/): the imitation provider
(the app's sandbox in its own process, kvid at --latency seconds), the task
workers `manage.py serve` starts, and ONE web process exactly as serve runs
it (gunicorn + uvicorn's worker, playground/asgi.py; serve's web_command).
The bench fires --requests concurrent POST /v1/images/generations (kvid
text-to-image, one image each) and, while they wait, samples the web
worker's threads and RSS every 0.2 s and times a normal page (the gallery,
signed in) against the same page while idle.

Figures (bench/results.json, merged):
  api_inflight_per_web_process   peak requests open at once on the one web process
                                 (all answered with their image, none refused)
  api_wait_web_threads           the web worker's most threads meanwhile (idle: printed)
  api_wait_page_latency_ratio    median gallery page time while they wait / idle (a full
                                 first page of cards both times: full_gallery)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.common import SANDBOX_KEY, free_port, proc_status, rss_kib, stop, wait_healthy  # noqa: E402
from bench.lib.sandbox import start_sandbox  # noqa: E402
from bench.lib.workers import Workers  # noqa: E402


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


async def page_times(client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(path)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, (path, r.status_code)
        await asyncio.sleep(0.05)
    return times


async def run(base: str, secret: str, session: str, n: int, web_pid: int, latency: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    api = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {secret}"}, limits=limits,
                            timeout=httpx.Timeout(300.0))
    page = httpx.AsyncClient(base_url=base, cookies={"sessionid": session}, timeout=60.0)
    idle_threads, idle_rss = proc_status(web_pid, "Threads"), rss_kib(web_pid)
    idle = await page_times(page, "/generations/", 20)
    state = {"open": 0, "peak": 0, "threads": 0, "rss": 0}

    async def one(i: int):
        state["open"] += 1
        try:
            r = await api.post("/v1/images/generations", json={
                "model": "kvid/text-to-image", "prompt": f"a quiet harbour at dawn, api bench {i}", "size": "512x512"})
            return r.status_code, (r.json().get("data") or [{}])[0].get("url") if r.status_code == 200 else r.text[:200]
        finally:
            state["open"] -= 1

    async def sample():
        while True:
            th, rss = proc_status(web_pid, "Threads"), rss_kib(web_pid)
            state["threads"], state["rss"] = max(state["threads"], th), max(state["rss"], rss)
            state["peak"] = max(state["peak"], state["open"])
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(min(3.0, latency / 3))  # all sent, waiting on the provider
    loaded = await page_times(page, "/generations/", 20)
    loaded_open = state["open"]
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    sampler.cancel()
    await api.aclose()
    await page.aclose()
    ok = sum(1 for status, url in results if status == 200 and url)
    errors = sorted({f"{status}: {body}" for status, body in results if status != 200})[:3]
    return {"requests": n, "ok": ok, "errors": errors, "elapsed": elapsed, "peak_open": state["peak"],
            "threads_idle": idle_threads, "threads_peak": state["threads"],
            "rss_idle_mib": idle_rss / 1024, "rss_peak_mib": state["rss"] / 1024,
            "page_idle_ms": statistics.median(idle) * 1000, "page_loaded_ms": statistics.median(loaded) * 1000,
            "page_loaded_max_ms": max(loaded) * 1000, "open_while_timing_page": loaded_open}


def full_gallery(team, user, n: int = 48):
    """Earlier finished generations with their images, so that the gallery
    page shows a full first page of cards both idle and while the requests
    wait (then their jobs' cards come first): the same page, not an empty
    one against a full one."""
    from datetime import timedelta

    from django.utils import timezone

    from playground.generations.models import Generation, GenerationImage

    now = timezone.now()
    gens = Generation.objects.bulk_create([
        Generation(team=team, owner=user, provider="kvid", model="text-to-image", status=Generation.SUCCEEDED,
                   params={"prompt": f"an earlier harbour at dawn {i}"}, created_at=now - timedelta(minutes=60 - i))
        for i in range(n)])
    GenerationImage.objects.bulk_create([
        GenerationImage(generation=g, file="x.png", thumbnail="x.jpg", content_type="image/png",
                        width=512, height=512, bytes=1000, sha256="0" * 64) for g in gens])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--latency", type=float, default=10.0, help="the imitation provider's latency (s)")
    ap.add_argument("--workers", type=int, help="task workers (default: settings.TASK_WORKERS, as serve)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="playground-api-wait-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SANDBOX_URL", "POLL_SECONDS")}
    for k in [k for k in env if k.endswith(("_API_KEY", "_BASE_URL"))]:
        del env[k]  # every provider talks to the bench's sandbox
    env.update(DATA_DIR=str(tmp), DJANGO_SETTINGS_MODULE="playground.settings", LOG_LEVEL="WARNING",
               PYTHONPATH=str(ROOT), API_TOKEN_RATE_PER_MINUTE="1000000", API_WAIT_SECONDS="300")
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from playground.accounts.models import ApiToken, Membership, Team
    from playground.generations.management.commands.serve import web_command, web_env

    print(f"api wait bench: {args.requests} concurrent API requests, provider latency {args.latency:g} s, "
          f"one web process; data in {tmp}; load average {os.getloadavg()[0]:.1f}", flush=True)
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench-api")
    team = Team.objects.create(name="Bench API")
    Membership.objects.create(team=team, user=user, role="owner")
    _, secret = ApiToken.issue(user, team, "bench")
    browser = Client()
    browser.force_login(user)
    session = browser.cookies["sessionid"].value
    full_gallery(team, user)

    sandbox, sb_port = start_sandbox(tmp, args.latency, 0, 64)
    root = f"http://127.0.0.1:{sb_port}"
    app_env = {**env, "DOWNLOAD_ALLOWED_PRIVATE_HOSTS": f"127.0.0.1:{sb_port}", "SANDBOX_URL": f"{root}/lat/{args.latency:g}",
               "SANDBOX_API_KEY": SANDBOX_KEY}
    workers = web = None
    try:
        workers = Workers(app_env, args.workers or settings.TASK_WORKERS, tmp, "api")
        workers.settle()
        port = free_port()
        log = open(tmp / "web.log", "w")
        web = subprocess.Popen(web_command(sys.executable, "127.0.0.1", port, workers=1), cwd=ROOT,
                               env={**web_env(), **app_env}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(f"http://127.0.0.1:{port}", web, tmp / "web.log")
        web_pid = children(web.pid)[0]  # gunicorn's one worker
        r = asyncio.run(run(f"http://127.0.0.1:{port}", secret, session, args.requests, web_pid, args.latency))
    finally:
        stop(web)
        if workers is not None:
            workers.stop()
        stop(sandbox)

    ratio = r["page_loaded_ms"] / r["page_idle_ms"]
    print(f"answered {r['ok']}/{r['requests']} with their image in {r['elapsed']:.1f} s"
          f"{'; errors: ' + '; '.join(r['errors']) if r['errors'] else ''}")
    print(f"peak requests open at once on one web process: {r['peak_open']}")
    print(f"web worker threads: idle {r['threads_idle']}, most {r['threads_peak']} while they waited"
          f" (API_THREADS={settings.API_THREADS})")
    print(f"web worker RSS: idle {r['rss_idle_mib']:.0f} MiB, most {r['rss_peak_mib']:.0f} MiB")
    print(f"gallery page (signed in), median of 20: idle {r['page_idle_ms']:.0f} ms, with "
          f"{r['open_while_timing_page']} API requests waiting {r['page_loaded_ms']:.0f} ms (max "
          f"{r['page_loaded_max_ms']:.0f} ms): {ratio:.2f}x")
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data.update({
        "api_inflight_per_web_process": r["peak_open"],
        "api_wait_answered": f"{r['ok']}/{r['requests']}",
        "api_wait_web_threads": r["threads_peak"],
        "api_wait_web_rss_mib": round(r["rss_peak_mib"]),
        "api_wait_page_latency_ratio": round(ratio, 2),
    })
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
