"""The web figures measured in this process (the Django test Client, the
app's own settings): the unchanged card poll's CPU against the login page's
(poll_cpu_vs_login, in a team of 5,000 generations), and the polling
requests a playground page makes (polls_per_page: counted in chromium, or
from the page's hx-triggers)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, free_port, stop, wait_port
from .teams import fill, make_team, poll_url, running


def browser_polls(session_cookie: str, env: dict, tmp: Path, seconds: float = 6.0) -> float:
    """Polling requests per second that a real page makes (Playwright +
    chromium against the app under gunicorn)."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = open(tmp / "web-browser.log", "w")
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "playground.wsgi", "--bind", f"127.0.0.1:{port}",
                            "--workers", "1", "--threads", "4", "--worker-class", "gthread", "--no-control-socket"],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_port(port, web, "the web server", tmp / "web-browser.log")
        except SystemExit as e:
            raise RuntimeError(str(e)) from None
        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium if Path(chromium).exists() else None)
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": session_cookie, "domain": "127.0.0.1", "path": "/"}])
            page = context.new_page()
            seen = []
            page.on("request", lambda r: seen.append((time.monotonic(), r.url)))
            page.goto(f"http://127.0.0.1:{port}/?provider=kie&model=seedream-v4")
            page.wait_for_timeout(1500)  # htmx starts its timers
            start = time.monotonic()
            page.wait_for_timeout(seconds * 1000)
            polls = [u for t, u in seen if t >= start and "/jobs/poll" in u]
            browser.close()
        return len(polls) / seconds
    finally:
        stop(web)
        log.close()


def web_figures(page_jobs: int, requests: int, team_size: int = 5000, browser_env: dict | None = None,
                tmp: Path | None = None) -> dict:
    """poll_cpu_vs_login (its team holds team_size generations, page_jobs of
    them running on the page) and polls_per_page."""
    from django.test import Client

    from playground.generations.models import Generation

    team, people = make_team("web")
    user = people[0]
    fill(team, people, max(0, team_size - page_jobs))
    cards = running(team, user, page_jobs)
    size = Generation.objects.filter(team=team).count()
    try:
        client = Client()
        client.force_login(user)
        card = poll_url(cards)
        anon = Client()

        def cpu_per(fn):
            for _ in range(20):
                fn()
            t = time.process_time()
            for _ in range(requests):
                fn()
            return (time.process_time() - t) / requests

        def poll():
            r = client.get(card, HTTP_HX_REQUEST="true")
            assert r.status_code == 204, r.status_code

        def login():
            r = anon.get("/login/")
            assert r.status_code == 200, r.status_code

        poll_cpu, login_cpu = cpu_per(poll), cpu_per(login)

        html = client.get("/?provider=kie&model=seedream-v4").content.decode()
        per_second = 0.0
        pollers = 0
        for m in re.finditer(r'hx-trigger="([^"]*)"', html):
            for every in re.finditer(r"every\s+([0-9.]+)(ms|s)", m.group(1)):
                seconds = float(every.group(1)) / (1000 if every.group(2) == "ms" else 1)
                per_second += 1 / seconds
                pollers += 1
        browser = None
        if browser_env is not None:
            try:
                browser = browser_polls(client.cookies["sessionid"].value, browser_env, tmp)
            except Exception as e:  # no chromium, no display of it: the count from the page stands
                print(f"  (browser count failed: {type(e).__name__}: {e})", flush=True)
    finally:
        Generation.objects.filter(team=team).delete()
    return {"poll_cpu_ms": poll_cpu * 1000, "login_cpu_ms": login_cpu * 1000, "poll_cpu_vs_login": poll_cpu / login_cpu,
            "polls_per_page": browser if browser is not None else per_second, "pollers": pollers,
            "counted": per_second, "browser": browser, "team_size": size}
