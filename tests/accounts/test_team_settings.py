from django.urls import reverse

from playground.accounts.models import Membership


def test_adult_content_is_off_until_an_owner_enables_it(client_in, team):
    assert team.adult_content_enabled is False
    client_in.post(reverse("team_settings"), {"name": "Alpha", "adult_content_enabled": "on"})
    team.refresh_from_db()
    assert team.adult_content_enabled is True
    client_in.post(reverse("team_settings"), {"name": "Alpha renamed"})
    team.refresh_from_db()
    assert (team.name, team.adult_content_enabled) == ("Alpha renamed", False)


def test_a_member_cannot_enable_adult_content(client, team, other_user):
    Membership.objects.create(team=team, user=other_user, role=Membership.MEMBER)
    client.force_login(other_user)
    client.post(reverse("team_settings"), {"name": "x", "adult_content_enabled": "on"})
    team.refresh_from_db()
    assert team.adult_content_enabled is False and team.name == "Alpha"


def test_owners_add_and_remove_members_and_keep_one_owner(client_in, team, user, other_user):
    client_in.post(reverse("add_member"), {"username": "mallory", "role": "member"})
    assert team.role_of(other_user) == "member"
    client_in.post(reverse("remove_member", args=["alice"]))
    assert team.role_of(user) == "owner"  # the last owner stays
    client_in.post(reverse("remove_member", args=["mallory"]))
    assert team.role_of(other_user) is None


def test_the_last_owner_cannot_demote_themselves(client_in, team, user):
    client_in.post(reverse("add_member"), {"username": "alice", "role": "member"})
    assert team.role_of(user) == "owner"
