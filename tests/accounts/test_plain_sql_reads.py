"""The reads every signed-in request makes, in plain SQL (accounts/plain_sql.py,
accounts/middleware.py, generations/polling.py): each must answer exactly
what the ORM rule it stands for answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client, RequestFactory
from django.utils import timezone

from playground.accounts import middleware
from playground.accounts.models import Membership
from playground.generations import polling
from playground.generations.models import Generation
from tests import factories

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def team_page(client):
    return client.get("/team/")


def test_a_signed_in_session_opens_pages_and_a_lost_one_goes_to_login(user, team):
    client = signed_in(user)
    assert team_page(client).status_code == 200
    # The same cookie in another web process after a logout there: gone.
    other = Client()
    other.cookies["sessionid"] = client.cookies["sessionid"].value
    assert team_page(other).status_code == 200
    other.post("/logout/")
    assert not Session.objects.exists()
    response = team_page(client)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_expired_session_goes_to_login_and_an_inactive_user_too(user, team):
    client = signed_in(user)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert team_page(client).status_code == 302
    client = signed_in(user)
    user.is_active = False
    user.save()
    assert team_page(client).status_code == 302


def test_a_password_changed_elsewhere_ends_the_session(user, team):
    client = signed_in(user)
    user.set_password("a-new-password-456")
    user.save()
    assert team_page(client).status_code == 302


def test_a_damaged_session_cookie_is_a_signed_out_visitor(user, team):
    client = Client()
    client.cookies["sessionid"] = "x" * 40
    assert team_page(client).status_code == 302
    Session.objects.create(session_key="y" * 40, session_data="not signed data",
                           expire_date=timezone.now() + timedelta(days=1))
    client.cookies["sessionid"] = "y" * 40
    assert team_page(client).status_code == 302


def current(user, session_team):
    request = RequestFactory().get("/")
    request.user = user
    request.session = {middleware.SESSION_KEY: session_team} if session_team is not None else {}
    return middleware._membership(request)


def test_the_current_team_is_the_sessions_else_the_first_joined(user, other_user):
    first = factories.team("First", owner=user)
    second = factories.team("Second")
    Membership.objects.create(team=second, user=user, created_at=timezone.now() + timedelta(seconds=5))
    foreign = factories.team("Foreign", owner=other_user)
    assert current(user, None).team == first
    assert current(user, str(second.uuid)).team == second
    assert current(user, str(second.uuid)).team.name == "Second"  # the team read with it
    assert current(user, str(foreign.uuid)).team == first  # not a member there
    assert current(user, "not-a-uuid").team == first
    m = current(user, str(second.uuid))
    assert (m.role, m.user_id, m.share_by_default) == ("member", user.pk, True)
    assert current(other_user, str(first.uuid)).team == foreign
    assert current(factories.user("loner"), None) is None


def test_the_poll_query_sees_what_visible_to_sees(user, team, bob, other_user, other_team):
    rows = [
        Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4", params={},
                                  visibility=Generation.PRIVATE),
        Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4", params={}),
        Generation.objects.create(team=team, owner=bob, provider="kie", model="seedream-v4", params={}),
        Generation.objects.create(team=team, owner=bob, provider="kie", model="seedream-v4", params={},
                                  visibility=Generation.PRIVATE),
        Generation.objects.create(team=other_team, owner=other_user, provider="kie", model="seedream-v4", params={}),
    ]
    ids = [g.uuid for g in rows]
    for viewer in (user, bob):
        expected = {(g.uuid, g.updated_at, g.created_at)
                    for g in Generation.objects.visible_to(viewer, team).filter(uuid__in=ids)}
        assert set(polling._versions(viewer, team, ids, None)) == expected
        assert len(expected) == 3
    # Jobs created after "since": only this user's own, in this team.
    since = rows[0].created_at - timedelta(microseconds=1)
    got = {ref for ref, _, _ in polling._versions(user, team, [], since)}
    assert got == {rows[0].uuid, rows[1].uuid}
    assert polling._versions(user, team, [], rows[-1].created_at) == []
    # The stamps read back are the ones the cards carry.
    ref, updated, _ = polling._versions(user, team, [rows[1].uuid], None)[0]
    assert polling.stamp(updated) == polling.stamp(rows[1].updated_at)
