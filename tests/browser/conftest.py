"""Fixtures for real-browser tests: the app on pytest-django's live_server, the
task worker in a background thread (the `worker` fixture, tests/conftest.py), providers on the session sandbox, and
Debian's Chromium driven by Playwright.

Fixtures for the test modules in this folder (log_in and shot are in
helpers.py); each module sets pytestmark = pytest.mark.browser.

The browser fixtures skip when Chromium is missing, unless REQUIRE_BROWSER=1
(CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture
def app(live_server, sandbox, settings, transactional_db):
    """The app served over HTTP, talking to the sandbox. The SQLite test
    database is a file (settings DATABASES TEST NAME), so the server thread,
    the worker thread and the test all see the same committed rows."""
    settings.PUBLIC_BASE_URL = live_server.url
    # The default hasher costs over a second per hash on a busy machine; a test
    # logs in through the form and creates users. Request `page` (or `app`)
    # before `user`/`team` so the users are created with this hasher too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return live_server


@pytest.fixture(scope="module")
def browser():
    """Chromium through Playwright's sync API, one per test module (a launch
    costs seconds). That API keeps an event loop running in the main thread,
    so Django's ORM would refuse sync calls from the test without
    DJANGO_ALLOW_ASYNC_UNSAFE; it is set only while the browser is up."""
    if not os.path.exists(CHROMIUM):
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield b
            finally:
                b.close()


@pytest.fixture
def page(browser, app):
    """A fresh browser context (no cookies) on the live app. Script errors
    and HTTP error responses are collected in page.problems."""
    context = browser.new_context(base_url=app.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    p.problems = []
    p.on("pageerror", lambda e: p.problems.append(f"page error: {e}"))
    p.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
         and p.problems.append(f"console: {m.text}"))
    p.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
         and p.problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"))
    yield p
    context.close()
