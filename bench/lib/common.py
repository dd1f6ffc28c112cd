"""What the bench's modules share: paths, names and process helpers."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import socket
import statistics
import subprocess
import time

ROOT = Path(__file__).resolve().parent.parent.parent
SANDBOX_KEY = "sandbox-key"
PROMPT = "a quiet harbour at dawn, bench"
RUN = os.urandom(4).hex()  # names of this run's users: a reused database (--database-url) keeps its rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not start; see {log}")
            time.sleep(0.1)


def stop(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append(int(entry))
    return out


def children(pid: int) -> list[int]:
    return sorted(_children_map().get(pid, []))


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its live descendants (gunicorn's workers)."""
    kids = _children_map()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu_seconds(p)
        todo += kids.get(p, [])
    return total


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in KiB, Threads); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    return proc_status(pid, "VmRSS")


def wait_healthy(url: str, proc, log: Path, timeout: float = 60.0) -> None:
    """Until the web process at url answers /healthz (not waiting for time
    to pass: for the process to start); exits if it dies or never answers."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the web process did not start; see {log}")
            time.sleep(0.2)


def settle(pids, timeout: float = 30.0) -> list[int]:
    """Wait until the processes' RSS stops changing (2 s steady); their RSS then.
    pids: a function giving the pids to watch (a gunicorn master's workers may change)."""
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    while time.monotonic() < deadline:
        now = [rss_kib(p) for p in pids()]
        steady = last is not None and len(now) == len(last) and all(now) and all(
            abs(a - b) < 512 for a, b in zip(now, last))
        stable = stable + 1 if steady else 0
        if stable >= 4:
            break
        last = now
        time.sleep(0.5)
    return [rss_kib(p) for p in pids()]


def mib(values) -> list[int]:
    return [round(v / 1024) for v in values]


def p95(values):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[max(0, min(len(values) - 1, int(round(len(values) * 0.95)) - 1))]


def median(values):
    return statistics.median(values) if values else float("nan")
