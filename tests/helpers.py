"""Helpers shared by tests (not fixtures: those are in conftest.py): a real
sandbox served over HTTP, and running queued tasks as db_worker does.

No test waits for time to pass: run_tasks moves the due times of deferred
tasks (a poll, a backoff, a Retry-After) to now instead, and the provider's
"still generating" to finished, as if the clock had jumped."""

from __future__ import annotations

import socketserver
import sqlite3
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from playground.generations.models import Generation
from playground.sandbox.app import Config, Sandbox

GENEROUS_LIMITS = {name: [(100000, 1.0)] for name in ("kie", "kwiki", "kvid", "kawai")}


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class RunningSandbox:
    """A sandbox app served on 127.0.0.1:<random port> in a thread."""

    def __init__(self, config: Config):
        self.app = Sandbox(config)
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        _running.add(self)

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        _running.discard(self)
        self.server.shutdown()
        self.server.server_close()

    def finish_now(self) -> int:
        """The provider's clock jumps: every task still generating is done
        (a job's outcome is still the one its prompt asked for)."""
        now = time.time()
        with sqlite3.connect(self.app.config.db_path, timeout=10) as c:
            return c.execute("UPDATE tasks SET finish_at=? WHERE finish_at>?", (now, now)).rowcount

    def started_earlier(self, seconds: float) -> int:
        """The provider's clock moves on by `seconds` for every task still
        generating (e.g. from "queued" to "processing")."""
        now = time.time()
        with sqlite3.connect(self.app.config.db_path, timeout=10) as c:
            return c.execute("UPDATE tasks SET created=created-?, finish_at=finish_at-? WHERE finish_at>?",
                             (seconds, seconds, now)).rowcount


_running: set[RunningSandbox] = set()


def finish_provider_jobs() -> None:
    """Every running sandbox finishes what it is generating (see finish_now)."""
    for sb in list(_running):
        sb.finish_now()


class Counting:
    """Counts the requests a sandbox receives over HTTP, by path fragment."""

    def __init__(self, sb):
        self.app, self.paths = sb.app, []
        sb.server.set_app(self)

    def __call__(self, environ, start_response):
        self.paths.append(environ.get("PATH_INFO", ""))
        return self.app(environ, start_response)

    def count(self, fragment):
        return sum(fragment in p for p in self.paths)


def start_sandbox(tmp_path, **overrides) -> RunningSandbox:
    config = Config(
        keys=("sandbox-key", "second-key"),
        latency=overrides.pop("latency", 0.3),
        db_path=str(tmp_path / f"sandbox-{time.monotonic_ns()}.sqlite3"),
        rate_limits=overrides.pop("rate_limits", GENEROUS_LIMITS),
        callbacks=overrides.pop("callbacks", False),
        **overrides,
    )
    return RunningSandbox(config)


def use_sandbox(settings, sb: RunningSandbox):
    settings.SANDBOX_URL = sb.url
    settings.SANDBOX_API_KEY = "sandbox-key"
    settings.DOWNLOAD_ALLOWED_PRIVATE_HOSTS = [sb.host]
    settings.POLL_SECONDS = 0.05
    settings.PROVIDER_ENV = {k: {"api_key": "", "base_url": ""} for k in settings.PROVIDERS}


def run_tasks(until: Generation | None = None, timeout: float = 20.0, advance: bool = True) -> None:
    """Run ready tasks as a db_worker would, until `until` is finished (or
    nothing is left). With advance (the default), nothing waits for time to
    pass: when no task is due, the clock jumps to the next one (deferred
    tasks and their jobs' due times are moved to now, and the sandboxes'
    jobs finish). advance=False runs deferred tasks when their run_after
    really passes."""
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.management.commands.db_worker import Worker

    # The worker closes stale connections between tasks; inside a test the
    # connection belongs to the test's transaction and must stay open.
    db_worker.close_old_connections = lambda: None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
               max_tasks=None, worker_id="test-worker", excluded_queue_names=[]).run()
        if until is not None:
            until.refresh_from_db()
            if not until.is_active:
                return
        elif not _pending():
            return
        if not (advance and advance_clock()):
            time.sleep(0.05)
    if until is not None:
        raise AssertionError(f"generation still {until.status} ({until.phase}) after {timeout}s")


def advance_clock() -> bool:
    """Make every deferred task due now, with the job it advances, and let
    the running sandboxes finish what they are generating. True if a task
    was moved."""
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.models import get_date_max

    now = timezone.now()
    later = dict(DBTaskResult.objects.filter(status="READY", run_after__gt=now).exclude(run_after=get_date_max())
                 .values_list("pk", "args_kwargs"))
    if not later:
        return False
    # The jobs first, then their tasks: a worker running alongside (browser
    # tests) never takes a moved task whose job is not due yet.
    jobs = [a["args"][0] for a in later.values() if a.get("args") and isinstance(a["args"][0], int)]
    Generation.objects.filter(pk__in=jobs, due_at__gt=now).update(due_at=now)
    finish_provider_jobs()
    return DBTaskResult.objects.filter(pk__in=list(later), status="READY").update(run_after=now) > 0


def _pending() -> bool:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY").exists()


def login(user):
    """A test client signed in as user (a second browser, for a second person)."""
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c
