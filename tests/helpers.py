"""Helpers shared by tests (not fixtures: those are in conftest.py): a real
sandbox served over HTTP, and running due jobs as a job worker does.

No test waits for time to pass: run_tasks moves the due times of waiting
jobs (a poll, a backoff, a Retry-After) to now instead, and the provider's
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
    """Run the due jobs' steps as a job worker does (the same claim and
    step: pipeline.worker.drain), and the side tasks as db_worker does,
    until `until` is finished (or nothing is left). With advance (the
    default), nothing waits for time to pass: when nothing is due, the clock
    jumps to the next due job (due times moved to now, and the sandboxes'
    jobs finish). advance=False runs a deferred step when its time really
    comes."""
    from playground.generations.pipeline.worker import drain

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ran = drain(holder="test-worker")
        run_side_tasks()
        if until is not None:
            until.refresh_from_db()
            if not until.is_active:
                return
        elif not _pending():
            return
        if advance and advance_clock():
            continue
        if advance and not ran and until is None:
            return  # what is left waits for a lease held elsewhere to run out
        time.sleep(0.05)
    if until is not None:
        raise AssertionError(f"generation still {until.status} ({until.phase}) after {timeout}s")


def step_job(gen: Generation, holder: str = "test-worker") -> str:
    """This job's due step, claimed and run as a job worker does; "not due"
    when it is not due or another worker holds it."""
    from django.db.models import Q

    from playground.generations.pipeline.queue import claim
    from playground.generations.pipeline.worker import run_claimed

    rows = claim(1, holder, among=Q(pk=gen.pk))
    if not rows:
        return "not due"
    return run_claimed(rows[0], {})


def run_side_tasks() -> None:
    """The ready side tasks (thumbnails of old images), as db_worker runs them."""
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    if not DBTaskResult.objects.ready().exists():
        return
    # The worker closes stale connections between tasks; inside a test the
    # connection belongs to the test's transaction and must stay open.
    db_worker.close_old_connections = lambda: None
    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=None, worker_id="test-worker", excluded_queue_names=[]).run()


def advance_clock() -> bool:
    """The clock jumps to the next due job: every job waiting for a later
    due time (a poll, a backoff, a Retry-After, a claim to confirm) is due
    now, and the running sandboxes finish what they are generating. True if
    a job was moved."""
    from django.utils import timezone

    from playground.generations.pipeline.queue import ADOPTABLE

    now = timezone.now()
    waiting = Generation.objects.filter(due_at__gt=now, lease_until__isnull=True)
    moved = waiting.filter(status__in=Generation.ACTIVE).update(due_at=now)
    moved += waiting.exclude(claimed_job_id="").filter(ADOPTABLE, provider_job_id="").update(due_at=now)
    finish_provider_jobs()
    return moved > 0


def _pending() -> bool:
    """A job not finished (due now or later), a claimed job id still to
    confirm, or a side task ready."""
    from django_tasks_db.models import DBTaskResult

    from playground.generations.pipeline.queue import ADOPTABLE

    return (Generation.objects.filter(status__in=Generation.ACTIVE).exists()
            or Generation.objects.exclude(claimed_job_id="").filter(ADOPTABLE, provider_job_id="").exists()
            or DBTaskResult.objects.ready().exists())


def login(user):
    """A test client signed in as user (a second browser, for a second person)."""
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c
