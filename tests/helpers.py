"""Helpers shared by tests (not fixtures: those are in conftest.py): a real
sandbox served over HTTP, and running queued tasks as db_worker does."""

from __future__ import annotations

import socketserver
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

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


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


def run_tasks(until: Generation | None = None, timeout: float = 20.0) -> None:
    """Run ready tasks as a db_worker would, until `until` is finished (or
    nothing is left). Deferred tasks run when their run_after passes."""
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
        time.sleep(0.05)
    if until is not None:
        raise AssertionError(f"generation still {until.status} ({until.phase}) after {timeout}s")


def _pending() -> bool:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY").exists()
