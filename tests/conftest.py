"""Shared fixtures: a real sandbox over HTTP, teams and users. Helpers that
are not fixtures are in helpers.py and factories.py."""

from __future__ import annotations

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
