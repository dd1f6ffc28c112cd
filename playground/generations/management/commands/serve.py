"""Run the whole app in one terminal: web server, job workers, the side-task
worker and the provider sandbox. Ctrl-C stops them all; a child that dies is
started again."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from uvicorn_worker import UvicornWorker


class Command(BaseCommand):
    help = "Start web (gunicorn), job workers, the side-task worker and sandbox; stop all with Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--workers", type=int, default=settings.TASK_WORKERS, help="job worker processes")
        parser.add_argument("--no-sandbox", action="store_true")

    def handle(self, host, port, workers, no_sandbox, **options):
        py = sys.executable
        manage = [py, str(settings.BASE_DIR / "manage.py")]
        specs = {
            # ASGI (uvicorn's worker): the API's requests wait for their images
            # as coroutines, holding no thread (playground/asgi.py).
            "web": web_command(py, host, port),
            # Side work only (thumbnails of images saved before an upgrade).
            "tasks": [*manage, "db_worker", "--queue-name", "default", "--interval", "5", "--no-reload"],
        }
        for i in range(workers):
            specs[f"worker{i + 1}"] = worker_command(py, f"{os.uname().nodename}-{os.getpid()}-{i + 1}")
        if not no_sandbox:
            specs["sandbox"] = [py, "-m", "gunicorn", "playground.sandbox.wsgi", "--bind",
                                f"{settings.SANDBOX_HOST}:{settings.SANDBOX_PORT}", "--workers", "1",
                                "--threads", "16", "--worker-class", "gthread", "--graceful-timeout", "2",
                                "--no-control-socket"]
        children = {name: self.start(name, cmd) for name, cmd in specs.items()}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(self.style.SUCCESS(
            f"Image Playground on http://{host}:{port}/ ({workers} job workers"
            f"{'' if no_sandbox else f', sandbox on {settings.SANDBOX_URL}'}). Ctrl-C stops everything."
        ))
        while not stopping:
            time.sleep(0.5)
            for name, proc in list(children.items()):
                if proc.poll() is not None and not stopping:
                    if not (name.startswith("worker") and proc.returncode == 0):
                        self.stderr.write(f"{name} exited with {proc.returncode}; starting it again")
                        time.sleep(1)
                    # (A job worker that ran its TASK_WORKER_MAX_TASKS steps exits with 0: a fresh one at once.)
                    children[name] = self.start(name, specs[name])
        self.stdout.write("Stopping...")
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.stdout.write("Stopped.")

    def start(self, name, cmd):
        # Children get their own process group: Ctrl-C reaches only us, and we
        # stop them in order.
        return subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True,
                                env=web_env() if name == "web" else None)


class WebWorker(UvicornWorker):
    """uvicorn's gunicorn worker, without uvicorn reading forwarded headers.

    uvicorn by default replaces the client's address with X-Forwarded-For's
    (and the scheme with X-Forwarded-Proto's) on any connection from
    FORWARDED_ALLOW_IPS, loopback by default, whatever BEHIND_PROXY says: 30
    failed logins from 127.0.0.1, each with a forged header, never locked
    (issue 23). Here REMOTE_ADDR is always the connection's own address, and
    the one rule that may look further (BEHIND_PROXY, TRUSTED_PROXIES) is
    playground.accounts.login_throttle.client_ip. CONFIG_KWARGS is
    uvicorn-worker's documented way to change uvicorn's Config."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}


WEB_WORKER_CLASS = f"{WebWorker.__module__}.{WebWorker.__qualname__}"


def worker_command(py, worker_id: str) -> list[str]:
    """A job worker as serve runs it (bench/throughput.py runs the same).
    It exits after TASK_WORKER_MAX_TASKS steps and serve starts it again:
    a worker whose memory grew is replaced rather than trimmed."""
    return [py, str(settings.BASE_DIR / "manage.py"), "run_jobs", "--worker-id", worker_id,
            "--max-steps", str(max(0, settings.TASK_WORKER_MAX_TASKS))]


def web_command(py, host, port, workers=None) -> list[str]:
    """The web process as serve runs it (bench/api_wait.py runs the same)."""
    return [py, "-m", "gunicorn", "playground.asgi:application", "--bind", f"{host}:{port}",
            "--workers", str(workers or settings.WEB_WORKERS), "--worker-class", WEB_WORKER_CLASS,
            "--access-logfile", "-", "--graceful-timeout", "5", "--timeout", "60", "--no-control-socket"]


def web_env() -> dict:
    """The web process's environment: the app's own. Its pages run on
    WEB_THREADS long-lived threads (playground/asgi.py), so their database
    connections are kept for CONN_MAX_AGE as under WSGI."""
    return dict(os.environ)
