"""The member's default for new generations, on the Team page: shared with
the team or private, for the current team only; a plain form (no JS)."""

from django.urls import reverse

from playground.accounts.models import Membership

from tests import factories


def test_the_team_page_shows_the_default_and_saves_a_change(client_in, team, user):
    page = client_in.get(reverse("team")).content.decode()
    assert 'name="share_by_default" value="team" checked' in page
    assert 'name="share_by_default" value="private">' in page
    response = client_in.post(reverse("share_default"), {"share_by_default": "private"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("team") + "#sharing"
    assert "New generations in Alpha will be private" in response.content.decode()
    assert Membership.objects.get(team=team, user=user).share_by_default is False
    page = client_in.get(reverse("team")).content.decode()
    assert 'name="share_by_default" value="private" checked' in page
    client_in.post(reverse("share_default"), {"share_by_default": "team"})
    assert Membership.objects.get(team=team, user=user).share_by_default is True


def test_it_is_per_team_and_per_member(client_in, team, user, other_user, other_team):
    elsewhere = factories.team("Gamma", owner=user)
    colleague = factories.user("carol")
    team.memberships.create(user=colleague, role="member")
    client_in.post(reverse("share_default"), {"share_by_default": "private"})
    assert Membership.objects.get(team=team, user=user).share_by_default is False
    assert Membership.objects.get(team=elsewhere, user=user).share_by_default is True
    assert Membership.objects.get(team=team, user=colleague).share_by_default is True
    assert Membership.objects.get(team=other_team, user=other_user).share_by_default is True


def test_a_wrong_value_changes_nothing_and_says_so(client_in, team, user):
    response = client_in.post(reverse("share_default"), {"share_by_default": "everyone"}, follow=True)
    assert "choose shared with the team or private" in response.content.decode()
    assert Membership.objects.get(team=team, user=user).share_by_default is True
    assert client_in.get(reverse("share_default")).status_code == 405


def test_it_needs_a_login(client, team):
    response = client.post(reverse("share_default"), {"share_by_default": "private"})
    assert response.status_code == 302 and "/login/" in response["Location"]
