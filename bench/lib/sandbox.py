"""The imitation provider: the app's own sandbox (playground/sandbox) served in
a SEPARATE process, so its CPU is not charged to the app.

    python -m bench.lib.sandbox PORT DB LATENCY WORKERS THREADS RTT_MS CALLBACKS   (started by start_sandbox)

- One port serves several latencies: /lat/<seconds>/<provider>/... is a
  sandbox with that latency (all share one task store, so a result URL works
  whichever prefix made the task).
- A round trip: every request waits RTT_MS / 2 before it is handled and
  RTT_MS / 2 before its answer is sent (the request's and the answer's way
  over a real network; a provider API over the internet answers in 50-300 ms,
  loopback in ~1). Connections are not charged a handshake (as with
  keep-alive). Accepted sockets have TCP_NODELAY (the stdlib server sets it
  here; gunicorn sets it on its listening socket, which accepted sockets
  inherit on Linux), and the sandbox's callback client (httpx) sets it too.
- Callbacks (CALLBACKS=1): the sandbox's own callback thread POSTs each
  finished KIE task to its callBackUrl, as the provider does (the app's
  PUBLIC_BASE_URL). A submit whose prompt holds NO_CALLBACK has its
  callBackUrl dropped here: a provider that cannot reach the app. The
  callbacks themselves are sent as the sandbox sends them, one at a time
  from each latency's thread, without an added round trip.
- Its rate limits are lifted, and the rendered pixels are cached per size
  (rendering a 1024 px PNG costs ~60 ms of CPU in the sandbox, which would
  otherwise dominate both sides).

The stdlib's threaded server (WORKERS 0, the default) kept 400 status
requests over 64 connections under ~0.5 s on a 2-core machine where gunicorn
gthread (2 x 32 threads) had multi-second tails; WORKERS N: gunicorn with N.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, SANDBOX_KEY, free_port, wait_port

NO_CALLBACK = "[bench-no-callback]"


def serve(argv):
    port, db_path, latency, workers, threads = int(argv[0]), argv[1], float(argv[2]), int(argv[3]), int(argv[4])
    half = float(argv[5]) / 2000 if len(argv) > 5 else 0.0
    callbacks = len(argv) > 6 and argv[6] == "1"
    sys.path.insert(0, str(ROOT))
    from functools import lru_cache

    from playground.sandbox import images
    from playground.sandbox.app import Config, Sandbox, Store

    real_render = images.render

    @lru_cache(maxsize=64)
    def _cached(width, height, fmt, variant):
        return real_render("bench", 1, width, height, fmt=fmt, variant=variant, label="bench")

    def render(prompt, seed, width, height, *, fmt="PNG", variant=0, label="", source=None):
        if source is not None:
            return real_render(prompt, seed, width, height, fmt=fmt, variant=variant, label=label, source=source)
        return _cached(width, height, fmt, variant)

    images.render = render  # the provider modules call images.render at request time
    # The limits are lifted: count nothing (each count is a write transaction
    # on the sandbox's SQLite file, which 1,000 concurrent submits queue on).
    Store.hit = lambda self, bucket, limits: None

    generous = {name: [(1_000_000, 1.0)] for name in ("kie", "kwiki", "kvid", "kawai")}
    apps: dict[float, Sandbox] = {}

    def sandbox(lat: float) -> Sandbox:
        if lat not in apps:
            apps[lat] = Sandbox(Config(keys=(SANDBOX_KEY,), latency=lat, db_path=db_path, callbacks=callbacks,
                                       rate_limits=generous))
        return apps[lat]

    sandbox(latency)
    prefix = re.compile(r"^/lat/([0-9.]+)(/.*)$")

    def no_callback(environ):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if NO_CALLBACK.encode() in body:
            try:
                data = json.loads(body)
                data.pop("callBackUrl", None)
                body = json.dumps(data).encode()
            except ValueError:
                pass
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))

    def app(environ, start_response):
        if half:
            time.sleep(half)  # the request's way there
        if environ.get("REQUEST_METHOD") == "POST":
            no_callback(environ)
        path = environ.get("PATH_INFO", "/")
        m = prefix.match(path)
        if m:
            environ["PATH_INFO"] = m.group(2)
            out = sandbox(float(m.group(1)))(environ, start_response)
        else:
            out = sandbox(latency)(environ, start_response)
        if half:
            time.sleep(half)  # the answer's way back (headers and body are sent after this)
        return out

    if workers == 0:  # the stdlib's threaded server, one process
        import socket
        import socketserver
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Threaded(socketserver.ThreadingMixIn, WSGIServer):
            daemon_threads = True
            request_queue_size = 4096

            def get_request(self):
                sock, addr = super().get_request()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock, addr

        class Quiet(WSGIRequestHandler):
            def log_message(self, *a):
                pass

        make_server("127.0.0.1", port, app, server_class=Threaded, handler_class=Quiet).serve_forever()
        return

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for k, v in {"bind": f"127.0.0.1:{port}", "workers": workers, "threads": threads,
                         "worker_class": "gthread", "worker_connections": 4000, "keepalive": 30,
                         "backlog": 4096, "timeout": 120, "graceful_timeout": 2, "accesslog": None,
                         "errorlog": "-", "loglevel": "warning"}.items():
                self.cfg.set(k, v)

        def load(self):
            return app

    Server().run()


def start_sandbox(tmp: Path, latency: float, workers: int, threads: int, rtt_ms: float = 0.0,
                  callbacks: bool = False):
    """The sandbox's process and port (its task store: tmp / sandbox.sqlite3)."""
    port = free_port()
    log = open(tmp / "sandbox.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.lib.sandbox", str(port), str(tmp / "sandbox.sqlite3"), str(latency),
         str(workers), str(threads), str(rtt_ms), "1" if callbacks else "0"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(port, proc, "the sandbox", tmp / "sandbox.log")
    return proc, port


def _store(tmp: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{tmp / 'sandbox.sqlite3'}?mode=ro", uri=True, timeout=30)


def callbacks_unsent(tmp: Path) -> int:
    """Finished tasks whose callback the sandbox has not taken up yet."""
    with _store(tmp) as c:
        return c.execute("SELECT count(*) FROM tasks WHERE callback_state=0 AND callback_url IS NOT NULL "
                         "AND callback_url != ''").fetchone()[0]


def ready_times(tmp: Path, task_ids) -> dict[str, float]:
    """{task id: epoch seconds at which the provider had its result}."""
    ids = [t for t in task_ids if t]
    out = {}
    with _store(tmp) as c:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(c.execute(f"SELECT id, finish_at FROM tasks WHERE id IN ({', '.join('?' * len(chunk))})",
                                 chunk).fetchall())
    return out


if __name__ == "__main__":
    serve(sys.argv[1:])
