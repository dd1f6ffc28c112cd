"""Failed logins are throttled per account and per address; the login page
says why and for how long; a team owner unlocks a member of their team."""

from datetime import timedelta

from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
import pytest

from playground.accounts.models import Membership, Team

LOGIN = "/login/"


def attempt(client, username, password, addr="10.0.0.1", **extra):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=addr, **extra)


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def test_an_account_locks_after_five_failures_from_any_address(client, user, settings):
    assert settings.LOGIN_FAILURE_LIMIT == 5
    for i in range(4):
        r = attempt(client, "alice", "wrong", addr=f"10.0.0.{i + 1}")
        assert r.status_code == 200 and "correct username and password" in r.content.decode()
    r = attempt(client, "alice", "wrong", addr="10.0.0.9")  # the fifth
    assert r.status_code == 429
    page = r.content.decode()
    assert "Too many failed log-in attempts for this account" in page
    assert "Try again in 15 minutes" in page and "ask a team owner to unlock" in page
    assert '<form method="post" action="/login/"' in page  # the login page, not a bare error
    # The right password from a fresh address is refused while the lock holds.
    r = attempt(client, "alice", "pw-alice-123", addr="10.0.0.77")
    assert r.status_code == 429 and not logged_in(r)
    # Another account is not affected.
    get_user_model().objects.create_user("bob", password="pw-bob-12345")
    assert logged_in(attempt(client, "bob", "pw-bob-12345", addr="10.0.0.77"))


def test_four_failures_then_the_right_password_logs_in_and_clears_the_count(client, user):
    for _ in range(4):
        attempt(client, "alice", "wrong")
    assert logged_in(attempt(client, "alice", "pw-alice-123"))
    client.logout()
    for _ in range(4):  # a fresh count: four more failures do not lock
        attempt(client, "alice", "wrong", addr="10.0.0.2")
    assert logged_in(attempt(client, "alice", "pw-alice-123", addr="10.0.0.2"))


def test_an_address_locks_after_twenty_failures_across_accounts(client, user, settings):
    assert settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS == 20
    for i in range(19):
        r = attempt(client, f"guess{i}", "wrong", addr="10.9.9.9")
        assert r.status_code == 200
    r = attempt(client, "guess-last", "wrong", addr="10.9.9.9")
    assert r.status_code == 429
    assert "from your network address" in r.content.decode()
    # Every account is refused from that address, even with the right password...
    r = attempt(client, "alice", "pw-alice-123", addr="10.9.9.9")
    assert r.status_code == 429 and not logged_in(r)
    # ...and allowed from another one.
    assert logged_in(attempt(client, "alice", "pw-alice-123", addr="10.9.9.10"))


def test_logging_into_ones_own_account_does_not_reset_the_address_count(client, user, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 6
    get_user_model().objects.create_user("bob", password="pw-bob-12345")
    for i in range(3):
        attempt(client, f"victim{i}", "wrong", addr="10.8.8.8")
    assert logged_in(attempt(client, "bob", "pw-bob-12345", addr="10.8.8.8"))
    client.logout()
    for i in range(3):
        r = attempt(client, f"victim{i}", "wrong", addr="10.8.8.8")
    assert r.status_code == 429


def test_the_lock_lifts_when_the_window_has_passed(client, user):
    for _ in range(5):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "pw-alice-123").status_code == 429
    # No sleeping: the failures are moved 16 minutes into the past.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert logged_in(attempt(client, "alice", "pw-alice-123"))


def test_the_message_counts_down_the_minutes_left(client, user):
    for _ in range(5):
        attempt(client, "alice", "wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=11, seconds=30))
    r = attempt(client, "alice", "pw-alice-123")
    assert "Try again in 4 minutes" in r.content.decode()


def test_behind_a_proxy_the_address_is_the_one_our_proxy_appended(client, user, settings):
    settings.BEHIND_PROXY = True
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    for i in range(3):
        # The client forges the left-most entry each time; our proxy appends the real one.
        r = attempt(client, f"u{i}", "wrong", addr="172.16.0.1", HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 203.0.113.5")
    assert r.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}
    # Another real client behind the same proxy is not locked out.
    r = attempt(client, "alice", "pw-alice-123", addr="172.16.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert logged_in(r)


def test_without_a_proxy_x_forwarded_for_is_ignored(client, user, settings):
    settings.BEHIND_PROXY = False
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    for i in range(3):
        r = attempt(client, f"u{i}", "wrong", addr="10.7.7.7", HTTP_X_FORWARDED_FOR=f"1.1.1.{i}")
    assert r.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.7.7.7"}


def lock(client, username):
    for _ in range(5):
        attempt(client, username, "wrong", addr="10.5.5.5")


def test_an_owner_sees_a_locked_member_and_unlocks_them(client, user, team):
    bob = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    Membership.objects.create(team=team, user=bob, role=Membership.MEMBER)
    lock(client, "bob")
    assert attempt(client, "bob", "pw-bob-12345", addr="10.5.5.6").status_code == 429

    client.force_login(user)
    page = client.get(reverse("team")).content.decode()
    assert "login locked" in page and reverse("unlock_member", args=["bob"]) in page
    r = client.post(reverse("unlock_member", args=["bob"]), follow=True)
    assert "bob can log in again." in r.content.decode()
    assert "login locked" not in client.get(reverse("team")).content.decode()
    client.logout()
    assert logged_in(attempt(client, "bob", "pw-bob-12345", addr="10.5.5.6"))


def test_an_owner_cannot_unlock_someone_outside_their_team(client, user, team, other_user, other_team):
    lock(client, "mallory")
    client.force_login(user)
    assert client.post(reverse("unlock_member", args=["mallory"])).status_code == 404
    client.logout()
    assert attempt(client, "mallory", "pw-mallory-123", addr="10.5.5.6").status_code == 429


def test_a_member_cannot_unlock(client, user, team):
    bob = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    Membership.objects.create(team=team, user=bob, role=Membership.MEMBER)
    carol = get_user_model().objects.create_user("carol", password="pw-carol-1234")
    Membership.objects.create(team=team, user=carol, role=Membership.MEMBER)
    lock(client, "carol")
    client.force_login(bob)
    assert "Unlock login" not in client.get(reverse("team")).content.decode()
    client.post(reverse("unlock_member", args=["carol"]))
    client.logout()
    assert attempt(client, "carol", "pw-carol-1234", addr="10.5.5.6").status_code == 429


def test_the_admin_login_is_throttled_too_and_admins_can_unlock_there(client, user):
    for _ in range(5):
        client.post("/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.4.4.4")
    assert attempt(client, "alice", "pw-alice-123", addr="10.4.4.5").status_code == 429
    admin = get_user_model().objects.create_superuser("root", password="pw-root-12345")
    client.force_login(admin)
    listing = client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    for pk in AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True):
        r = client.post(f"/admin/axes/accessattempt/{pk}/delete/", {"post": "yes"})
        assert r.status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    client.logout()
    assert logged_in(attempt(client, "alice", "pw-alice-123", addr="10.4.4.5"))



@pytest.mark.parametrize("field", ["username", "password"])
def test_a_login_with_text_that_is_not_valid_unicode_is_refused_not_a_500(client, user, field):
    """A multipart body in charset=utf-7 carries a lone surrogate past the
    decoder (RELIABILITY 11): refused before the login check reads it."""
    from tests.bad_text import SURROGATE, multipart

    fields = {"username": "alice", "password": "not the password", field: SURROGATE}
    body, ctype = multipart(fields)
    r = client.generic("POST", LOGIN, body, content_type=ctype)
    assert r.status_code == 400
    assert f"\u201c{field}\u201d is not valid Unicode" in r.content.decode()
    assert client.get(LOGIN).status_code == 200  # the next request is served
