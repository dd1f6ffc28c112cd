"""The web process exactly as `manage.py serve` starts it (gunicorn with the
uvicorn worker, serve's web_command), in a subprocess on a free loopback
port, against the test database. Tests that need the real server's
behaviour (keep-alive connections, the client address the server reports)
use it; the other API tests run uvicorn in a thread (conftest.py)."""

from __future__ import annotations

import contextlib
import http.client
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings

from playground.generations.management.commands.serve import web_command, web_env
from tests.generations.test_worker_crash import database_url

# Settings the test decides for the web process, never inherited from the shell.
_OWN = ("DATABASE_URL", "DATA_DIR", "MEDIA_ROOT", "BEHIND_PROXY", "TRUSTED_PROXIES", "PROXY_COUNT",
        "FORWARDED_ALLOW_IPS", "HTTPS", "DEBUG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_web(tmp_path: Path, **extra_env: str):
    """Yield (host, port, log path) of a running web process; stop it after.
    Needs the transactional_db fixture (the process reads the test database)."""
    port = free_port()
    env = {k: v for k, v in web_env().items() if k not in _OWN}
    env.update(DATABASE_URL=database_url(), DATA_DIR=str(tmp_path / "web-data"), MEDIA_ROOT=str(tmp_path / "media"),
               TESTING="true", LOG_LEVEL="WARNING", **extra_env)
    log_path = tmp_path / "web.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(web_command(sys.executable, "127.0.0.1", port, workers=1), cwd=settings.BASE_DIR,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it answers (not waiting for time to pass: for the process to start)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            assert proc.poll() is None, f"the web process exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"the web process did not start:\n{log_path.read_text()}"
            time.sleep(0.1)
        yield "127.0.0.1", port, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
