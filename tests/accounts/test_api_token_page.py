"""The Account page's API tokens: made with a name, an expiry, a model
allowlist, a rate and a budget; the secret shown once; revoked by their
user (or a team owner); other people's tokens never shown or touched."""

from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from playground.accounts.models import ApiToken
from playground.ledger.models import Budget

from tests.helpers import login


def make(client, **fields):
    data = {"name": "ci", "expires": "never", "expires_on": "", "rate_per_minute": "",
            "budget-amount": "", "budget-counted_in": "money", "budget-period": "month", **fields}
    return client.post(reverse("account"), data)


def test_the_account_page_is_in_the_menu_and_names_the_user_and_their_teams(client_in, team, other_team, user):
    other_team.memberships.create(user=user, role="member")
    page = client_in.get(reverse("playground")).content.decode()
    assert reverse("account") in page and "Account and API tokens" in page
    page = client_in.get(reverse("account")).content.decode()
    assert "alice" in page and "Alpha" in page and "Beta" in page and "No API tokens in Alpha yet" in page


def test_a_new_token_shows_its_secret_once_then_only_its_last_four(client_in, team, user):
    day = (timezone.now() + timedelta(days=10)).date()
    made = make(client_in, name="nightly build", expires="date", expires_on=day.isoformat(),
                models=["kie/seedream-v4", "kawai/generations"], rate_per_minute="30",
                **{"budget-amount": "2.5", "budget-counted_in": "kie", "budget-period": "week"})
    assert made.status_code == 200
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.allowed_models, token.rate_per_minute) == (
        "nightly build", ["kie/seedream-v4", "kawai/generations"], 30)
    assert token.expires_at.astimezone(team.zone).date() == day + timedelta(days=1)
    budget = Budget.objects.get(api_token=token)
    assert (budget.amount, budget.unit, budget.provider, budget.period, budget.member) == (
        Decimal("2.5"), "kie_credit", "kie", "week", user)

    first = made
    page = first.content.decode()
    secret = page.split('id="new-token-secret" value="')[1].split('"')[0]
    assert secret.startswith("ipg_") and ApiToken.find(secret) == token and token.token_hash != secret
    assert "it will not be shown again" in page and secret.endswith(token.last4)
    assert "no-store" in first["Cache-Control"]
    assert "0 KIE credits / 2.5 KIE credits" in page and "kie/seedream-v4, kawai/generations" in page

    again = client_in.get(reverse("account")).content.decode()
    assert secret not in again and f"...{token.last4}" in again and "nightly build" in again
    # The secret is stored nowhere: not in the session, not in any table.
    from django.contrib.sessions.models import Session

    assert not any(secret in str(s.get_decoded()) for s in Session.objects.all())


def test_the_same_form_sent_twice_makes_one_token_and_does_not_show_the_secret_again(client_in, user):
    page = client_in.get(reverse("account")).content.decode()
    nonce = page.split('name="nonce" value="')[1].split('"')[0]
    first = make(client_in, name="ci", expires="never", nonce=nonce)
    secret = first.content.decode().split('id="new-token-secret" value="')[1].split('"')[0]
    second = make(client_in, name="ci", expires="never", nonce=nonce)
    body = second.content.decode()
    assert second.status_code == 200 and ApiToken.objects.filter(user=user).count() == 1
    assert secret not in body and "its secret was shown then" in body
    other = make(client_in, name="ci 2", expires="never", nonce="another-render")
    assert other.status_code == 200 and ApiToken.objects.filter(user=user).count() == 2


def test_bad_input_is_refused_on_its_field_and_makes_no_token(client_in, team):
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
    cases = [
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"expires": "date", "expires_on": yesterday}, "must be in the future"),
        ({"expires": "date"}, "Give the date the token stops working."),
        ({"models": ["kie/no-such-model"]}, "kie/no-such-model is not a configured model."),
        ({"rate_per_minute": "0"}, "greater than or equal to 1"),
        ({"rate_per_minute": "10001"}, "less than or equal to 10000"),
        ({"budget-amount": "0"}, "A budget must be more than 0."),
        ({"budget-amount": "5", "budget-counted_in": ""}, "Choose one for the budget."),
    ]
    for fields, error in cases:
        response = make(client_in, **fields)
        assert response.status_code == 400, fields
        assert error in response.content.decode(), fields
    assert not ApiToken.objects.exists() and not Budget.objects.exists()
    # A client that sends no budget fields at all makes a token without one.
    assert client_in.post(reverse("account"), {"name": "bare"}).status_code == 200
    assert ApiToken.objects.get().name == "bare" and not Budget.objects.exists()


def test_revoke_is_for_the_tokens_user_or_a_team_owner_and_others_never_see_them(client_in, team, user, bob,
                                                                                  other_user, other_team):
    mine, _ = ApiToken.issue(user, team, "alice-ci")
    bobs, _ = ApiToken.issue(bob, team, "bob-notebook")
    bob_client = login(bob)
    page = bob_client.get(reverse("account")).content.decode()
    assert "bob-notebook" in page and "alice-ci" not in page and "All API tokens" not in page
    assert bob_client.post(reverse("revoke_token", args=[mine.uuid])).status_code == 404
    outsider = login(other_user)
    assert outsider.post(reverse("revoke_token", args=[bobs.uuid])).status_code == 404
    mine.refresh_from_db()
    bobs.refresh_from_db()
    assert mine.state == bobs.state == "active"

    # The owner sees every token in the team and revokes bob's (he left).
    owner_page = client_in.get(reverse("account")).content.decode()
    assert "All API tokens in Alpha" in owner_page and "bob-notebook" in owner_page
    done = client_in.post(reverse("revoke_token", args=[bobs.uuid]), follow=True).content.decode()
    assert "bob-notebook" in done and "of bob revoked" in done
    bobs.refresh_from_db()
    assert bobs.state == "revoked"

    client_in.post(reverse("revoke_token", args=[mine.uuid]))
    again = client_in.post(reverse("revoke_token", args=[mine.uuid]), follow=True).content.decode()
    assert "was already revoked" in again
    mine.refresh_from_db()
    assert mine.state == "revoked"
    assert 'data-state="revoked"' in bob_client.get(reverse("account")).content.decode()


def test_a_tokens_user_sets_changes_and_removes_its_budget_and_owners_see_it_on_the_budgets_page(
        client_in, team, user, bob):
    token, _ = ApiToken.issue(user, team, "ci")
    url = reverse("token_budget", args=[token.uuid])
    bad = client_in.post(url, {"amount": "", "counted_in": "money", "period": "month"})
    assert bad.status_code == 400 and "This field is required." in bad.content.decode()
    client_in.post(url, {"amount": "1.50", "counted_in": "money", "period": "day"})
    client_in.post(url, {"amount": "3", "counted_in": "money", "period": "month"})
    budget = Budget.objects.get(api_token=token)
    assert (budget.amount, budget.unit, budget.provider, budget.period) == (Decimal("3"), "USD", "", "month")
    budgets_page = client_in.get(reverse("budgets")).content.decode()
    assert "API token &#x27;ci&#x27; budget (monthly)" in budgets_page
    assert "budget (monthly)" not in login(bob).get(reverse("budgets")).content.decode()
    # Only the token's user sets its budget.
    assert login(bob).post(url, {"amount": "9", "counted_in": "money", "period": "month"}).status_code == 404
    client_in.post(url, {"remove": "1"})
    assert not Budget.objects.filter(api_token=token).exists()
