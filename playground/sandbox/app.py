"""A small WSGI server that imitates each provider's API over real HTTP.

It is not Django: it is the "other side" of the wire, so that adapters are
exercised exactly as against the real services (auth headers, status codes,
envelopes, async states, rate limits, callbacks, expiring result URLs).
State lives in a SQLite file so that several server processes and restarts
see the same tasks.

Each provider module registers its routes with Sandbox.route().
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
import threading
import time
from urllib.parse import parse_qs, urlencode

log = logging.getLogger("playground.sandbox")

# One module per provider, each with register(sandbox); served under /<name>/.
PROVIDER_MODULES = ("kie", "kawai", "kvid", "kwiki")


def _env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


@dataclass
class Config:
    keys: tuple[str, ...] = ("sandbox-key",)
    latency: float = 4.0  # seconds an async task keeps generating
    url_ttl: float = 20 * 60  # result URLs expire (KIE: 20 minutes)
    db_path: str = ":memory:"
    secret: str = "sandbox-signing-secret"
    rate_limits: dict = field(default_factory=dict)  # provider -> [(count, seconds)]
    callbacks: bool = True

    @classmethod
    def from_env(cls) -> "Config":
        from django.conf import settings  # settings read the same environment

        keys = tuple(k.strip() for k in os.environ.get("SANDBOX_KEYS", settings.SANDBOX_API_KEY).split(",") if k.strip())
        return cls(
            keys=keys,
            latency=settings.SANDBOX_LATENCY,
            url_ttl=_env_float("SANDBOX_URL_TTL", 20 * 60),
            db_path=settings.SANDBOX_DB,
            secret=settings.SECRET_KEY,
        )


class Request:
    def __init__(self, environ):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        self.path = environ.get("PATH_INFO", "/")
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        self.headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            self.headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.body = environ["wsgi.input"].read(length) if length > 0 else b""
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        self.root = f"{scheme}://{host}"
        self.match: dict = {}

    def json(self):
        """The parsed body, or raises ValueError."""
        return json.loads(self.body.decode("utf-8"))

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if not auth:
            return None
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


class Response:
    def __init__(self, body=b"", status=200, headers=None, content_type="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = {"Content-Type": content_type, **(headers or {})}


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 410: "Gone", 422: "Unprocessable Entity",
           429: "Too Many Requests", 455: "Service Unavailable", 500: "Internal Server Error",
           503: "Service Unavailable"}


class Store:
    """Tasks and rate-limit hits in SQLite, one connection per thread."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, provider TEXT, model TEXT, api_key_hash TEXT,
        params TEXT, created REAL, finish_at REAL, outcome TEXT, message TEXT,
        callback_url TEXT, callback_state INTEGER DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS hits (bucket TEXT, ts REAL);
    CREATE INDEX IF NOT EXISTS hits_bucket ON hits(bucket, ts);
    CREATE INDEX IF NOT EXISTS tasks_callbacks ON tasks(callback_state, finish_at);
    """

    def __init__(self, path: str):
        self.path = path
        self.local = threading.local()
        if path == ":memory:":
            self.path = f"file:sandbox-{id(self)}?mode=memory&cache=shared"
            self._keep = self.conn()  # keeps the shared in-memory database alive
        self.conn().executescript(self.SCHEMA)

    def conn(self) -> sqlite3.Connection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, uri=self.path.startswith("file:"),
                                check_same_thread=False)
            c.row_factory = sqlite3.Row
            if not self.path.startswith("file:"):
                c.execute("PRAGMA journal_mode=WAL")
            self.local.conn = c
        return c

    def create_task(self, **row):
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        values = [json.dumps(v) if k == "params" else v for k, v in row.items()]
        self.conn().execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", values)

    def task(self, task_id: str, provider: str):
        row = self.conn().execute("SELECT * FROM tasks WHERE id=? AND provider=?", (task_id, provider)).fetchone()
        if row is None:
            return None
        task = dict(row)
        task["params"] = json.loads(task["params"])
        return task

    def hit(self, bucket: str, limits) -> float | None:
        """Record a request; return seconds to wait if a limit is exceeded."""
        now = time.time()
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            longest = max((s for _, s in limits), default=0)
            c.execute("DELETE FROM hits WHERE bucket=? AND ts<?", (bucket, now - longest))
            for count, seconds in limits:
                rows = c.execute(
                    "SELECT ts FROM hits WHERE bucket=? AND ts>=? ORDER BY ts", (bucket, now - seconds)
                ).fetchall()
                if len(rows) >= count:
                    c.execute("COMMIT")
                    return max(0.0, rows[0]["ts"] + seconds - now)
            c.execute("INSERT INTO hits VALUES (?, ?)", (bucket, now))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return None

    def due_callbacks(self):
        now = time.time()
        rows = self.conn().execute(
            "SELECT id, provider FROM tasks WHERE callback_state=0 AND callback_url IS NOT NULL "
            "AND callback_url != '' AND finish_at<=?", (now,)
        ).fetchall()
        claimed = []
        for row in rows:
            cur = self.conn().execute("UPDATE tasks SET callback_state=1 WHERE id=? AND callback_state=0", (row["id"],))
            if cur.rowcount == 1:
                claimed.append(self.task(row["id"], row["provider"]))
        return claimed


class Sandbox:
    def __init__(self, config: Config | None = None):
        self.config = config or Config()
        self.store = Store(self.config.db_path)
        self.routes: list[tuple[str, re.Pattern, callable]] = []
        self.callback_senders: dict[str, callable] = {}
        self._thread = None
        self._thread_lock = threading.Lock()
        import importlib

        for name in PROVIDER_MODULES:
            importlib.import_module(f"{__package__}.{name}").register(self)

    # -- routing --
    def route(self, method: str, pattern: str, handler):
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def __call__(self, environ, start_response):
        self._ensure_callback_thread()
        req = Request(environ)
        try:
            resp = self.dispatch(req)
        except Exception:  # a sandbox bug should look like a provider 500
            log.exception("sandbox error")
            resp = Response({"error": "internal_error", "message": "Sandbox internal error."}, 500)
        start_response(f"{resp.status} {REASONS.get(resp.status, 'Status')}", list(resp.headers.items()))
        return [resp.body]

    def dispatch(self, req: Request) -> Response:
        allowed = False
        for method, pattern, handler in self.routes:
            m = pattern.match(req.path)
            if m:
                if method != req.method:
                    allowed = True
                    continue
                req.match = m.groupdict()
                return handler(req)
        if allowed:
            return Response({"code": 405, "msg": "Method not allowed"}, 405)
        prefix = req.path.strip("/").split("/")[0]
        handler = getattr(self, f"not_found_{prefix}", None)
        return handler(req) if handler else Response({"error": "not_found", "message": "No such endpoint."}, 404)

    # -- helpers shared by provider modules --
    def key_ok(self, key: str | None) -> bool:
        return bool(key) and any(hmac.compare_digest(key, k) for k in self.config.keys)

    @staticmethod
    def key_hash(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def sign(self, path: str, expires: int) -> str:
        return hmac.new(self.config.secret.encode(), f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, root: str, path: str) -> str:
        expires = int(time.time() + self.config.url_ttl)
        return f"{root}{path}?{urlencode({'expires': expires, 'sig': self.sign(path, expires)})}"

    def url_valid(self, req: Request) -> bool:
        try:
            expires = int(req.query.get("expires", "0"))
        except ValueError:
            return False
        good = hmac.compare_digest(req.query.get("sig", ""), self.sign(req.path, expires))
        return good and expires >= time.time()

    # -- callbacks --
    def _ensure_callback_thread(self):
        if not self.config.callbacks or self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._callback_loop, name="sandbox-callbacks", daemon=True)
                self._thread.start()

    def _callback_loop(self):
        """Due callbacks, sent several at once as a provider's own would be
        (one at a time, a burst of 1,000 finished jobs took seconds to tell)."""
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        def send(client, task, sender):
            try:
                client.post(task["callback_url"], json=sender(task))
            except httpx.HTTPError as e:
                log.info("callback to %s failed: %s", task["callback_url"], type(e).__name__)

        with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=CALLBACKS_AT_ONCE)) as client, \
                ThreadPoolExecutor(CALLBACKS_AT_ONCE, thread_name_prefix="sandbox-callback") as pool:
            while True:
                try:
                    sent = []
                    for task in self.store.due_callbacks():
                        sender = self.callback_senders.get(task["provider"])
                        if sender:
                            sent.append(pool.submit(send, client, task, sender))
                    for future in sent:
                        future.result()
                except Exception:
                    log.exception("callback loop")
                time.sleep(0.1)


CALLBACKS_AT_ONCE = 8


def marker(prompt: str) -> set[str]:
    """Error triggers in a prompt, e.g. "[fail]" or "[429]" (see README)."""
    return set(re.findall(r"\[([a-z0-9_-]+)\]", (prompt or "").lower()))


def application_from_env():
    return Sandbox(Config.from_env())
