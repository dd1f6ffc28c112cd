"""Invite links bring someone without an account into a team (single use,
expiring); any user can start a team of their own."""

from datetime import timedelta
import re
import uuid

from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from playground.accounts.models import Invite, Membership, Team


def make_invite(client_in, role="member", note="for Dana"):
    r = client_in.post(reverse("create_invite"), {"role": role, "note": note}, follow=True)
    page = r.content.decode()
    assert "Invite link created" in page
    link = re.search(r'value="(http://testserver/invite/[0-9a-f-]{36}/)"', page).group(1)
    return link.removeprefix("http://testserver")


def signup(client, link, username="dana", password="a-long-passphrase-9"):
    return client.post(link, {"username": username, "password1": password, "password2": password})


def test_a_visitor_opens_an_invite_creates_an_account_and_is_in_the_team(client_in, client, team, django_user_model):
    link = make_invite(client_in)
    client_in.logout()

    page = client.get(link)
    assert page.status_code == 200 and "Join Alpha" in page.content.decode()
    r = signup(client, link)
    assert r.status_code == 302 and r["Location"] == reverse("playground")
    dana = django_user_model.objects.get(username="dana")
    assert dana.check_password("a-long-passphrase-9")
    assert team.role_of(dana) == "member"
    # Logged in, working in that team.
    home = client.get(reverse("playground"), follow=True)
    assert home.wsgi_request.user == dana and home.wsgi_request.team == team
    assert "Welcome to Alpha" in home.content.decode()


def test_an_invite_works_once(client_in, client, team, django_user_model):
    link = make_invite(client_in)
    client_in.logout()
    signup(client, link)
    client.logout()
    r = signup(client, link, username="eve")
    assert r.status_code == 410 and "already been used" in r.content.decode()
    assert not django_user_model.objects.filter(username="eve").exists()
    assert client.get(link).status_code == 410


def test_an_expired_invite_says_so_and_creates_nothing(client_in, client, team, django_user_model):
    link = make_invite(client_in)
    client_in.logout()
    Invite.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    page = client.get(link)
    assert page.status_code == 410 and "It expired on" in page.content.decode()
    assert signup(client, link).status_code == 410
    assert not django_user_model.objects.filter(username="dana").exists()


def test_invites_expire_after_the_configured_days(client_in, team, settings):
    settings.INVITE_EXPIRY_DAYS = 3
    make_invite(client_in)
    inv = Invite.objects.get()
    assert timedelta(days=3) - timedelta(minutes=1) < inv.expires_at - timezone.now() <= timedelta(days=3)


def test_password_rules_and_taken_usernames_are_checked_at_their_fields(client_in, client, team, django_user_model):
    link = make_invite(client_in)
    client_in.logout()
    r = signup(client, link, password="short")
    assert r.status_code == 400 and "too short" in r.content.decode()
    r = client.post(link, {"username": "dana", "password1": "a-long-passphrase-9", "password2": "different-one-99"})
    assert r.status_code == 400 and "didn’t match" in r.content.decode()
    r = signup(client, link, username="ALICE")  # taken, whatever the case
    assert r.status_code == 400 and "already exists" in r.content.decode()
    r = signup(client, link, username="x" * 151)
    assert r.status_code == 400 and "at most 150 characters" in r.content.decode()
    assert Invite.objects.get().state == "pending"  # a failed try does not use the invite
    assert django_user_model.objects.count() == 1


def test_two_people_using_one_link_at_once_only_one_gets_in(team, user, other_user):
    Invite.objects.create(team=team, expires_at=timezone.now() + timedelta(days=1))
    first, second = Invite.objects.get(), Invite.objects.get()  # both loaded while pending
    assert first.claim(user) is True
    assert second.claim(other_user) is False
    assert Invite.objects.get().used_by == user


def test_a_logged_in_user_joins_with_the_link(client_in, client, team, other_user, other_team):
    link = make_invite(client_in, role="owner", note="")
    client.force_login(other_user)
    page = client.get(link).content.decode()
    assert "logged in as <strong>mallory</strong>" in page
    r = client.post(link)
    assert r.status_code == 302
    assert team.role_of(other_user) == "owner"
    assert client.get(reverse("playground")).wsgi_request.team == team
    assert Invite.objects.get().used_by == other_user


def test_a_member_opening_an_invite_leaves_it_for_someone_else(client_in, team):
    link = make_invite(client_in)
    r = client_in.post(link, follow=True)
    assert "already a member" in r.content.decode()
    assert Invite.objects.get().state == "pending"


def test_owners_see_pending_invites_and_revoke_them(client_in, client, team):
    link = make_invite(client_in, note="for Dana")
    page = client_in.get(reverse("team")).content.decode()
    assert "for Dana" in page and link in page
    inv = Invite.objects.get()
    r = client_in.post(reverse("revoke_invite", args=[inv.uuid]), follow=True)
    assert "Invite revoked" in r.content.decode()
    assert link not in client_in.get(reverse("team")).content.decode()
    client_in.logout()
    page = client.get(link)
    assert page.status_code == 404 and "revoked" in page.content.decode()


def test_members_cannot_invite_and_other_teams_cannot_revoke(client, team, other_user, other_team):
    inv = Invite.objects.create(team=team, expires_at=timezone.now() + timedelta(days=1))
    Membership.objects.create(team=team, user=other_user, role=Membership.MEMBER)
    client.force_login(other_user)
    client.post(reverse("switch_team"), {"team": str(team.uuid)})
    client.post(reverse("create_invite"), {"role": "owner"})
    assert Invite.objects.count() == 1
    assert "Invite someone" not in client.get(reverse("team")).content.decode()
    # As owner of Beta, an invite of Alpha is not theirs to revoke.
    client.post(reverse("switch_team"), {"team": str(other_team.uuid)})
    client.post(reverse("revoke_invite", args=[inv.uuid]))
    assert Invite.objects.filter(pk=inv.pk).exists()


def test_another_teams_invite_is_a_404_to_revoke_and_stays_valid(client_in, team, other_user, other_team):
    """RELIABILITY 8: the owner of Beta revoking an invite of Alpha gets what
    an unknown invite gets, a 404, not a message that confirms it exists."""
    from django.test import Client

    link = make_invite(client_in)
    inv = Invite.objects.get()
    mallory = Client()
    mallory.force_login(other_user)  # owner of Beta, working in Beta
    r = mallory.post(reverse("revoke_invite", args=[inv.uuid]))
    assert r.status_code == 404
    inv.refresh_from_db()
    assert inv.state == "pending" and Invite.objects.filter(pk=inv.pk).exists()
    assert mallory.post(reverse("revoke_invite", args=[uuid.uuid4()])).status_code == 404
    assert client_in.post(reverse("revoke_invite", args=[uuid.uuid4()])).status_code == 404
    # The link still works, and Alpha's owner still revokes it.
    assert client_in.get(reverse("team")).status_code == 200
    r = client_in.post(reverse("revoke_invite", args=[inv.uuid]), follow=True)
    assert r.status_code == 200 and "Invite revoked" in r.content.decode()
    assert not Invite.objects.filter(pk=inv.pk).exists()
    client_in.logout()
    assert client_in.get(link).status_code == 404


def test_revoking_an_own_invite_already_used_says_so(client_in, team, other_user):
    make_invite(client_in)
    inv = Invite.objects.get()
    assert inv.claim(other_user)
    r = client_in.post(reverse("revoke_invite", args=[inv.uuid]), follow=True)
    assert r.status_code == 200 and "already used" in r.content.decode()
    assert Invite.objects.get(pk=inv.pk).used_by == other_user  # kept: who joined with it


def test_an_unknown_invite_is_a_clear_404(client, db):
    r = client.get(reverse("invite", args=[uuid.uuid4()]))
    assert r.status_code == 404 and "This invite link does not work" in r.content.decode()


def test_invite_notes_have_a_length_limit(client_in, team):
    r = client_in.post(reverse("create_invite"), {"role": "member", "note": "n" * 101}, follow=True)
    assert "at most 100 characters" in r.content.decode()
    assert not Invite.objects.exists()


# --- creating a team ------------------------------------------------------------


def test_a_user_without_a_team_creates_one_and_owns_it(client, db):
    dana = get_user_model().objects.create_user("dana", password="pw-dana-12345")
    client.force_login(dana)
    page = client.get(reverse("playground"))
    assert page.status_code == 403 and "Create team" in page.content.decode()
    r = client.post(reverse("create_team"), {"name": "  Studio  "}, follow=True)
    team = Team.objects.get(name="Studio")
    assert team.role_of(dana) == "owner"
    assert r.wsgi_request.team == team and "Team Studio created" in r.content.decode()


def test_a_member_of_a_team_starts_another_and_switches_to_it(client_in, user, team):
    client_in.post(reverse("create_team"), {"name": "Side project"})
    new = Team.objects.get(name="Side project")
    assert new.role_of(user) == "owner" and team.role_of(user) == "owner"
    assert client_in.get(reverse("team")).wsgi_request.team == new


def test_a_double_submit_makes_one_team(client_in, user, team):
    client_in.post(reverse("create_team"), {"name": "Twice"})
    client_in.post(reverse("create_team"), {"name": "Twice"})
    assert Team.objects.filter(name="Twice").count() == 1


def test_a_team_name_is_required_and_limited(client_in, team):
    r = client_in.post(reverse("create_team"), {"name": "x" * 101}, follow=True)
    assert "at most 100 characters" in r.content.decode()
    r = client_in.post(reverse("create_team"), {"name": "   "}, follow=True)
    assert "This field is required" in r.content.decode()
    assert Team.objects.count() == 1


def test_creating_a_team_needs_a_login(client, db):
    r = client.post(reverse("create_team"), {"name": "X"})
    assert r.status_code == 302 and "/login/" in r["Location"]
    assert not Team.objects.exists()
