"""Settings: every value has an embedded default and an environment override.

The embedded default is a single machine: SQLite in WAL mode, media on local
disk, every provider pointed at its local sandbox. See README for the table.
"""

from datetime import timedelta
import ipaddress
import os
from pathlib import Path
import secrets
import sys

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret(name: str, make) -> str:
    """A secret generated once per installation and kept in DATA_DIR."""
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
# Comma-separated Fernet keys, newest first: MultiFernet encrypts with the
# first and decrypts with any, so keys rotate without losing credentials.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    _local_secret("fernet_key", _fernet_key)
]

DEBUG = env.bool("DEBUG", default=False)
TESTING = "pytest" in sys.modules or env.bool("TESTING", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")

# HTTPS hardening. Off for the embedded default (plain http on localhost);
# production sets HTTPS=true (and BEHIND_PROXY=true behind a TLS proxy).
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
# Behind a reverse proxy: trust X-Forwarded-Proto/-Host, and read the client's
# address from X-Forwarded-For (the PROXY_COUNT-th entry from the right: the
# one our own proxy appended; entries further left are the client's to forge),
# but only on a connection from TRUSTED_PROXIES (addresses or networks of the
# proxies; by default loopback and the private networks, a deployment names
# its proxy's own). A bad entry stops the start. One rule for every use of the client's address:
# playground.accounts.login_throttle.client_ip. The web server itself reads
# no forwarded header (serve's WebWorker): REMOTE_ADDR is the connection's.
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
PROXY_COUNT = env.int("PROXY_COUNT", default=1)
TRUSTED_PROXIES = [
    str(ipaddress.ip_network(net, strict=False)) for net in env.list("TRUSTED_PROXIES", default=[
        "127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    ])
]
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Django's database sessions (the same table as before; no cache: each process's own
# local-memory cache would serve another process's stale copy of a session).
SESSION_ENGINE = "playground.accounts.plain_sql"  # the database engine, its read in plain SQL

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # The database backend of Django's Tasks framework (django.tasks).
    "django_tasks_db",
    "axes",
    # The migration history of the tables from before the split into apps
    # (their models now live in the apps below; docs/architecture.md).
    "playground.core",
    "playground.accounts",
    "playground.ledger",
    "playground.generations",
    "playground.library",
    "playground.compare",
    "playground.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # whitenoise's, async-capable: under ASGI only static files go through it (lib/static.py).
    "playground.lib.static.StaticFiles",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "playground.accounts.middleware.current_team",
    # Text that is not valid Unicode is refused here, before any view or login check (lib/text.py).
    "playground.lib.text.RefuseInvalidText",
    # Django's own Content-Security-Policy header (SECURE_CSP, below).
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last: turns a locked-out login into the login page with its message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "playground.urls"
WSGI_APPLICATION = "playground.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "playground.accounts.context_processors.teams",
            ],
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers work while a writer commits; IMMEDIATE takes the write
    # lock at BEGIN so two writers queue on busy_timeout instead of failing
    # with "database is locked" half-way through a transaction.
    # The same backend, with writers that take turns (playground/lib/sqlite).
    DATABASES["default"]["ENGINE"] = "playground.lib.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT", default=20),
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA foreign_keys=ON;"
        ),
    }
    # A file, not memory, so that live-server and worker threads share it; one
    # per test process, so that concurrent test runs do not collide.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("TEST_DB_NAME", default=str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3"))
    }
# Persistent connections (the web process's pages too: playground/asgi.py),
# except in tests unless asked: live-server threads would keep theirs open
# and block dropping the test database. (A task worker otherwise
# opens a new connection for every task: on SQLite that is a file open and
# three PRAGMAs, ~3% of a worker's CPU.)
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0 if TESTING else 60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's Tasks framework (django.tasks) runs side work only (thumbnails of
# images saved before an upgrade), on django-tasks-db's database backend
# (`manage.py db_worker`). A job's steps are not tasks: the Generation row is
# their queue, run by `manage.py run_jobs` (docs/decisions/0001-job-queue.md).
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The login throttle (django-axes) checks before the password does.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend with the user read in plain SQL (accounts/plain_sql.py).
    "playground.accounts.plain_sql.UserBackend",
    # Kept after it so that sessions signed in before it still work.
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "playground"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if TESTING or DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Images in S3-compatible object storage (several machines share it) when a
# bucket is named; else local files under MEDIA_ROOT (the embedded default).
# Either way every image is served by the app after the team check: streamed
# through it, or with MEDIA_SIGNED_REDIRECTS a redirect to a signed URL that
# expires after MEDIA_SIGNED_URL_SECONDS.
S3_BUCKET = env.str("S3_BUCKET", default="")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("S3_PREFIX", default=""),
            "default_acl": None,  # private objects
            "querystring_auth": True,
            "querystring_expire": env.int("MEDIA_SIGNED_URL_SECONDS", default=300),
            "file_overwrite": False,
            "signature_version": "s3v4",
        },
    }
MEDIA_SIGNED_REDIRECTS = env.bool("MEDIA_SIGNED_REDIRECTS", default=False)
MEDIA_SIGNED_URL_SECONDS = env.int("MEDIA_SIGNED_URL_SECONDS", default=300)
WHITENOISE_USE_FINDERS = TESTING or DEBUG
if WHITENOISE_USE_FINDERS:
    STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing directory

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Login throttle (django-axes) ---------------------------------------------
# Failed logins lock an account after LOGIN_FAILURE_LIMIT failures, and an
# address (every account tried from it) after LOGIN_FAILURE_LIMIT_PER_ADDRESS,
# for LOGIN_LOCKOUT_MINUTES after the last failure. A team owner unlocks a
# member on the Team page; an admin deletes the "Access attempts" in the admin.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env.int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", default=20)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_ENABLED = True
AXES_HANDLER = "playground.accounts.login_throttle.LoginThrottleHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: per account, per address
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT  # the handler applies each parameter's own limit
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # "try again in N minutes" stays true
AXES_RESET_ON_SUCCESS = False  # the handler clears only the account's own failures on success
AXES_LOCKOUT_CALLABLE = "playground.accounts.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "playground.accounts.login_throttle.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # failures are kept; successful logins are not logged forever
AXES_VERBOSE = False

# --- Team invites -------------------------------------------------------------
INVITE_EXPIRY_DAYS = env.int("INVITE_EXPIRY_DAYS", default=7)

# --- Content-Security-Policy (Django's, django.middleware.csp) -----------------
# Only the app's own scripts and styles: no inline script, handler or style.
# (Django exempts its own DEBUG error pages, as django-csp did.)
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- Jobs -------------------------------------------------------------------
# How long a job stays held after its worker's last heartbeat: a worker that
# dies is replaced once this has passed (its jobs are due again). A working
# worker renews it every JOB_HEARTBEAT_SECONDS, so a slow provider call (120 s)
# keeps its job.
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=30)
JOB_HEARTBEAT_SECONDS = env.float("JOB_HEARTBEAT_SECONDS", default=max(0.2, JOB_LEASE_SECONDS / 3))
# Steps one job worker runs at once (threads): provider calls in flight.
JOB_THREADS = env.int("JOB_THREADS", default=16)
# Give up on an async provider job after this long.
JOB_MAX_SECONDS = env.int("JOB_MAX_SECONDS", default=3600)
# Job workers (`manage.py run_jobs`) that `manage.py serve` starts.
TASK_WORKERS = env.int("TASK_WORKERS", default=3)
# Seconds an idle job worker waits before it looks for due jobs again.
TASK_WORKER_INTERVAL = env.float("TASK_WORKER_INTERVAL", default=0.25)
# A job worker exits after this many steps (run_jobs --max-steps, as serve starts
# it) and serve starts a fresh one: what its memory grew by goes with it. 0: never.
TASK_WORKER_MAX_TASKS = env.int("TASK_WORKER_MAX_TASKS", default=10000)
# Pillow's pixel blocks (its documented setting, read when PIL is first imported,
# after this): with its 16 MiB a 1024 px image is one 4 MiB allocation that the
# C allocator keeps once freed; in 64 KiB blocks worker RSS stays flat, no slower.
os.environ.setdefault("PILLOW_BLOCK_SIZE", env.str("PILLOW_BLOCK_SIZE", default="64k"))
WEB_WORKERS = env.int("WEB_WORKERS", default=2)

# --- Downloads and uploads (RELIABILITY 6) -----------------------------------
DOWNLOAD_MAX_BYTES = env.int("DOWNLOAD_MAX_BYTES", default=40 * 1024 * 1024)
DOWNLOAD_TIMEOUT_SECONDS = env.float("DOWNLOAD_TIMEOUT_SECONDS", default=60.0)
# 4096 x 4096 (KIE 4K) fits; decoding costs ~4 bytes a pixel, so keep it modest.
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=25_000_000)
# Images decoded and re-encoded at once in one process (a job worker's threads
# mostly wait for providers; pixels cost CPU and ~4 bytes a pixel of memory).
IMAGE_CHECKS_AT_ONCE = env.int("IMAGE_CHECKS_AT_ONCE", default=2)

# --- Sandbox ----------------------------------------------------------------
SANDBOX_HOST = env.str("SANDBOX_HOST", default="127.0.0.1")
SANDBOX_PORT = env.int("SANDBOX_PORT", default=8001)
SANDBOX_URL = env.str("SANDBOX_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_PORT}").rstrip("/")
# Seconds a sandbox async job stays "generating" before it finishes.
SANDBOX_LATENCY = env.float("SANDBOX_LATENCY", default=4.0)
SANDBOX_DB = env.str("SANDBOX_DB", default=str(DATA_DIR / "sandbox.sqlite3"))
# The key the app presents to a sandbox when a team has none of its own.
SANDBOX_API_KEY = env.str("SANDBOX_API_KEY", default="sandbox-key")
# Hosts (host:port) that downloads may reach even though they are not public.
DOWNLOAD_ALLOWED_PRIVATE_HOSTS = env.list(
    "DOWNLOAD_ALLOWED_PRIVATE_HOSTS", default=[f"{SANDBOX_HOST}:{SANDBOX_PORT}"]
)

# --- Providers --------------------------------------------------------------
# One registry: provider key -> adapter class. Nothing else names a provider.
PROVIDERS = {
    "kie": "playground.providers.kie.KieAdapter",
    "kvid": "playground.providers.kvid.KvidAdapter",
    "kawai": "playground.providers.kawai.KawaiAdapter",
    "kwiki": "playground.providers.kwiki.KwikiAdapter",
}
# Instance-wide credentials (a team's own credential overrides them). With no
# key at all a provider talks to its sandbox.
PROVIDER_ENV = {
    key: {
        "api_key": env.str(f"{key.upper()}_API_KEY", default=""),
        "base_url": env.str(f"{key.upper()}_BASE_URL", default=""),
    }
    for key in PROVIDERS
}
# Seconds between status polls of an async provider; empty: each provider's
# own cadence (KIE documents 5 s). Jobs running over 2 minutes poll every 15 s.
POLL_SECONDS = env.float("POLL_SECONDS", default=None)
# Adaptive polling: a job is first polled when its model usually finishes
# (the median provider time of its last POLL_TIMING_SAMPLES successes, plus
# POLL_TIMING_MARGIN of it, at least 0.5 s), then briefly at short intervals
# (POLL_FAST_*, below), then at the provider's cadence, then,
# POLL_BACKOFF_AFTER cadences past that time, less and less often (up to
# POLL_BACKOFF_MAX_SECONDS). Never sooner than the cadence (the floor) but
# for the budgeted short polls.
POLL_TIMING_SAMPLES = env.int("POLL_TIMING_SAMPLES", default=25)
POLL_TIMING_MARGIN = env.float("POLL_TIMING_MARGIN", default=0.05)
POLL_TIMING_CACHE_SECONDS = env.float("POLL_TIMING_CACHE_SECONDS", default=0 if TESTING else 30)
POLL_BACKOFF_AFTER = env.int("POLL_BACKOFF_AFTER", default=3)
POLL_BACKOFF_MAX_SECONDS = env.float("POLL_BACKOFF_MAX_SECONDS", default=15.0)
# A job the provider gave its own estimate for (kvid's estimated_time) is
# expected done at the estimate plus POLL_ESTIMATE_MARGIN seconds, and asked
# once before, at POLL_MIDWAY of that time, so its card shows the provider's
# stage while it lasts.
POLL_ESTIMATE_MARGIN = env.float("POLL_ESTIMATE_MARGIN", default=0.0)
POLL_MIDWAY = env.float("POLL_MIDWAY", default=0.4)
# Still generating at its expected time: asked every POLL_FAST_SECONDS for
# POLL_FAST_WINDOW of that time (at least 3 such polls) before the cadence,
# each short poll taking a slot of its key's budget, POLL_FAST_BUDGET per
# POLL_FAST_BUDGET_SECONDS across all jobs and workers (KIE's docs poll
# batches of 10-50 jobs every 5 s; 0 turns short polls off).
POLL_FAST_SECONDS = env.float("POLL_FAST_SECONDS", default=1.0)
POLL_FAST_WINDOW = env.float("POLL_FAST_WINDOW", default=0.3)
POLL_FAST_BUDGET = env.int("POLL_FAST_BUDGET", default=10)
POLL_FAST_BUDGET_SECONDS = env.float("POLL_FAST_BUDGET_SECONDS", default=5.0)
# Signed input-image URLs given to providers stay valid this long.
INPUT_URL_TTL_SECONDS = env.int("INPUT_URL_TTL_SECONDS", default=3600)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Transient provider errors (429, 5xx, connection errors) are retried this
# many times, with capped exponential backoff and jitter, before a job fails.
JOB_MAX_RETRIES = env.int("JOB_MAX_RETRIES", default=8)
JOB_BACKOFF_BASE_SECONDS = env.float("JOB_BACKOFF_BASE_SECONDS", default=2.0)
JOB_BACKOFF_CAP_SECONDS = env.float("JOB_BACKOFF_CAP_SECONDS", default=300.0)
# A provider's own rate-limit hint is waited out, however long, until the job
# has existed this long (Kwiki's hourly limit can mean an hour).
JOB_RATE_LIMIT_MAX_WAIT_SECONDS = env.int("JOB_RATE_LIMIT_MAX_WAIT_SECONDS", default=2 * 3600)

if TESTING:
    # Hashing passwords at full strength makes every user fixture slow.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- The OpenAI-compatible API (/v1/, playground/api) ----------------------------
# Requests per minute per API token when the token sets none.
API_TOKEN_RATE_PER_MINUTE = env.int("API_TOKEN_RATE_PER_MINUTE", default=60)
# How long an image request waits for its images before a 504 naming the job.
API_WAIT_SECONDS = env.float("API_WAIT_SECONDS", default=120.0)
# Lifetime of the signed image URLs the API returns.
API_IMAGE_URL_SECONDS = env.int("API_IMAGE_URL_SECONDS", default=3600)
# Most images (n) one request may ask for, and the largest JSON body.
API_MAX_N = env.int("API_MAX_N", default=10)
API_JSON_MAX_BYTES = env.int("API_JSON_MAX_BYTES", default=256 * 1024)
# Threads shared by the waiting API requests of one web process for their
# few database calls (playground/asgi.py): a waiting request holds none.
API_THREADS = env.int("API_THREADS", default=4)
# Threads per web process that run the pages' sync code (each keeps its
# database connection for CONN_MAX_AGE; playground/asgi.py).
WEB_THREADS = env.int("WEB_THREADS", default=8)

# --- Kawai and other OpenAI-Images-compatible providers ------------------------
# Estimated price per image, JSON: {model: {size: {quality: price}}}, "*"
# matches anything (see playground/providers/kawai.py PRICES). Empty: built in.
KAWAI_PRICES = env.json("KAWAI_PRICES", default={})
# Model ids offered as suggestions in Kawai's free-text model field.
KAWAI_MODELS = env.list("KAWAI_MODELS", default=[])
# More providers that speak the OpenAI Images API, without code, JSON list:
# [{"key": "openai", "label": "OpenAI", "base_url": "https://api.openai.com/v1",
#   "multipart_images": true, "models": ["gpt-image-1", "dall-e-3"],
#   "prices": {...optional, shaped like KAWAI_PRICES...}}]
# Each gets <KEY>_API_KEY / <KEY>_BASE_URL like any provider; without a key it
# talks to the Kawai sandbox. registry.py turns each entry into an adapter.
OPENAI_COMPATIBLE_PROVIDERS = env.json("OPENAI_COMPATIBLE_PROVIDERS", default=[])
if not isinstance(OPENAI_COMPATIBLE_PROVIDERS, list) or not all(
    isinstance(e, dict) and isinstance(e.get("key"), str) and e.get("base_url") for e in OPENAI_COMPATIBLE_PROVIDERS
):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        'OPENAI_COMPATIBLE_PROVIDERS must be a JSON list of objects with "key" and "base_url".'
    )
for _entry in OPENAI_COMPATIBLE_PROVIDERS:
    PROVIDER_ENV[_entry["key"]] = {
        "api_key": env.str(f"{_entry['key'].upper()}_API_KEY", default=""),
        "base_url": env.str(f"{_entry['key'].upper()}_BASE_URL", default=""),
    }
# kvid.ai credits per megapixel (1024 x 1024 px) for cost estimates; empty: the adapter's own rate.
KVID_CREDITS_PER_MEGAPIXEL = env.str("KVID_CREDITS_PER_MEGAPIXEL", default="")

# --- KIE.ai tables (playground/providers/kie.py) ------------------------------
# Credits per model or option, JSON merged over the built-in table, e.g.
# KIE_CREDITS='{"qwen:high": 9, "flux-kontext-max": 12}'. The figure is recorded on each job.
KIE_CREDITS = env.json("KIE_CREDITS", default={})

# Money: budgets and converted totals are in this currency. A provider's
# credits turn into money only through a stated price per credit: a team's
# own (Credits page), else the instance's (admin), else these defaults. KIE
# documents 1 credit = $0.005; the others stay "no price set" until one is
# set. CREDIT_PRICES='{"kvid": "0.01"}' adds more (money per credit).
MONEY_CURRENCY = env.str("MONEY_CURRENCY", default="USD")
CREDIT_PRICES = {"kie": "0.005", **env.json("CREDIT_PRICES", default={})}
# Input-image field names the KIE contract leaves open, e.g. KIE_INPUT_FIELDS='{"recraft": "image"}'
# (slots: nano-banana-edit, midjourney, recraft).
KIE_INPUT_FIELDS = env.json("KIE_INPUT_FIELDS", default={})
