"""The run command starts web, workers, sweeper and sandbox, and Ctrl-C stops them all."""

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
import httpx


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(entry)
    return out


def test_serve_runs_everything_and_ctrl_c_stops_it(tmp_path):
    port, sandbox_port = free_port(), free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(port), "SANDBOX_PORT": str(sandbox_port),
           "TASK_WORKERS": "1", "WEB_WORKERS": "1"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, "manage.py"]
    for cmd in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run(manage + cmd, cwd=settings.BASE_DIR, env=env, check=True, timeout=300)
    boot = subprocess.run(manage + ["bootstrap_demo"], cwd=settings.BASE_DIR, env=env, check=True, timeout=120,
                          capture_output=True, text=True)
    assert "Demo login: username 'demo', password" in boot.stdout
    proc = subprocess.Popen(manage + ["serve"], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/login/").status_code == 200
        sandbox = wait_http(f"http://127.0.0.1:{sandbox_port}/kie/api/v1/seedream/record-info?taskId=x")
        assert sandbox.status_code == 401  # the sandbox answers like KIE.ai: no key, no access
        children = children_of(proc.pid)
        assert len(children) == 4  # web, sweeper, one worker, sandbox
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert "Stopped." in out
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        if proc.poll() is None:
            proc.kill()
