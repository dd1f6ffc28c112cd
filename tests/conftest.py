"""Shared fixtures: a real sandbox over HTTP, teams and users. Helpers that
are not fixtures are in helpers.py and factories.py."""

from __future__ import annotations

import threading

import pytest

from tests import factories
from tests.helpers import start_sandbox, use_sandbox


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    """One sandbox for the session: generous rate limits, short latency, no callbacks."""
    sb = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """Point every provider at the session sandbox."""
    use_sandbox(settings, sandbox_server)
    return sandbox_server


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def user(db):
    return factories.user("alice")


@pytest.fixture
def team(user):
    return factories.team("Alpha", owner=user)


@pytest.fixture
def other_user(db):
    return factories.user("mallory")


@pytest.fixture
def other_team(other_user):
    return factories.team("Beta", owner=other_user)


@pytest.fixture
def bob(team):
    """A member (not an owner) of alice's team."""
    b = factories.user("bob")
    team.memberships.create(user=b, role="member")
    return b


@pytest.fixture
def client_in(client, user, team):
    client.force_login(user)
    return client


@pytest.fixture
def worker(transactional_db, sandbox):
    """A job worker (`manage.py run_jobs`' Worker) running in a daemon
    thread for the length of the test (the browser and API tests: jobs
    advance while a server thread serves)."""
    from django.db import connections

    from playground.generations.pipeline.worker import Worker

    w = Worker(threads=4, interval=0.05, worker_id="test-worker-thread")
    errors = []

    def run():
        try:
            w.run()
        except BaseException as e:  # surfaced at teardown: a dead worker hides as a stuck job
            errors.append(e)
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=run, name="test-worker-thread", daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the job worker did not stop"
    assert not errors, f"the task worker crashed: {errors[0]!r}"
