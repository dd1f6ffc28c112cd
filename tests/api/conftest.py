"""The API tests: the app under a real ASGI server (uvicorn, as `manage.py
serve` runs it, in a thread of the test process), a task worker thread, the
session sandbox, and the official `openai` client."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from playground.accounts.models import ApiToken


@pytest.fixture
def asgi_server(transactional_db, settings, monkeypatch):
    """playground.asgi served by uvicorn on a free port; the SQLite test
    database is a file, so the server, the worker and the test see the same rows."""
    import uvicorn

    from playground import asgi
    from playground.asgi import application

    monkeypatch.setattr(asgi, "_pool", None)  # made again from this test's settings (API_THREADS)
    monkeypatch.setattr(asgi, "_pages", None)  # and WEB_THREADS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="off"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    settings.PUBLIC_BASE_URL = url
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def app(asgi_server, sandbox, worker, settings):
    """The app, its sandbox and a task worker: a request's jobs run."""
    settings.API_WAIT_SECONDS = 30
    return asgi_server


@pytest.fixture
def secret(user, team):
    """A personal API token of alice in Alpha (its secret)."""
    return ApiToken.issue(user, team, "script")[1]


@pytest.fixture
def client_for(asgi_server):
    """An openai.OpenAI client against the app, for a token's secret (no retries:
    the tests look at each answer). Jobs run only with the `app` fixture."""
    import openai

    def make(secret: str, **kwargs):
        return openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=secret, max_retries=0, timeout=60, **kwargs)

    return make


@pytest.fixture
def oai(app, client_for, secret):
    """alice's client, with jobs running (the app fixture)."""
    return client_for(secret)
