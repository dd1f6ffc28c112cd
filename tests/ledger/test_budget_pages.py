"""The budgets and prices pages: owners set budgets and the team's prices,
members read; a budget made on the page holds before anything is sent."""

from decimal import Decimal
import uuid

from django.urls import reverse
import pytest

from playground.ledger.budgets import BudgetExceeded
from playground.ledger.models import Budget, CreditPrice, Entry
from playground.ledger.prices import Prices
from tests import factories


@pytest.fixture
def bob(team):
    member = factories.user("bob")
    team.memberships.create(user=member, role="member")
    return member


def add(client, **fields):
    data = {"scope": "team", "provider": "", "unit": "money", "amount": "10", "period": "month", "kind": "hard"}
    data.update(fields)
    return client.post(reverse("budgets"), data)


def test_an_owner_adds_a_budget_and_sees_it_with_what_is_left(client_in, team, user):
    response = add(client_in, provider="kie", unit="own", amount="100", period="week")
    assert response.status_code == 302
    budget = Budget.objects.get()
    assert (budget.team, budget.member, budget.provider, budget.unit, budget.amount, budget.period, budget.hard) == (
        team, None, "kie", "kie_credit", Decimal("100"), "week", True)
    body = client_in.get(reverse("budgets")).content.decode()
    assert "Team weekly budget for" in body
    assert "0 KIE credits / 100 KIE credits" in body
    assert "<meter" in body and "resets in" in body


def test_a_member_budget_in_money(client_in, team, bob):
    assert add(client_in, scope=str(bob.pk), amount="2.5", period="none", kind="soft").status_code == 302
    budget = Budget.objects.get()
    assert budget.member == bob and budget.unit == "USD" and not budget.hard and budget.provider == ""
    assert "never resets" in client_in.get(reverse("budgets")).content.decode()


@pytest.mark.parametrize("fields, field, message", [
    ({"amount": "0"}, "amount", "more than 0"),
    ({"amount": "-5"}, "amount", "more than 0"),
    ({"amount": "1.23456"}, "amount", "4 decimal places"),
    ({"amount": "lots"}, "amount", "Enter a number"),
    ({"unit": "own", "provider": ""}, "unit", "counted in money"),
    ({"period": "year"}, "period", "Select a valid choice"),
    ({"provider": "nope"}, "provider", "Select a valid choice"),
    ({"scope": "999999"}, "scope", "Select a valid choice"),
])
def test_bad_input_gets_an_error_on_its_field(client_in, fields, field, message):
    response = add(client_in, **fields)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert message in response.content.decode()
    assert not Budget.objects.exists()


def test_someone_elses_user_is_not_a_scope(client_in, other_user):
    response = add(client_in, scope=str(other_user.pk))
    assert response.status_code == 400 and "scope" in response.context["form"].errors


def test_an_owner_deletes_a_budget_but_not_another_teams(client_in, team, other_team):
    mine = Budget.objects.create(team=team, unit="USD", amount=Decimal("5"))
    theirs = Budget.objects.create(team=other_team, unit="USD", amount=Decimal("5"))
    assert client_in.post(reverse("delete_budget", args=[theirs.uuid])).status_code == 404
    assert client_in.post(reverse("delete_budget", args=[uuid.uuid4()])).status_code == 404
    assert client_in.get(reverse("delete_budget", args=[mine.uuid])).status_code == 405
    assert client_in.post(reverse("delete_budget", args=[mine.uuid])).status_code == 302
    assert list(Budget.objects.all()) == [theirs]


def test_members_read_the_team_budgets_and_their_own_only(client, team, user, bob):
    other = factories.user("carol")
    team.memberships.create(user=other, role="member")
    team_budget = Budget.objects.create(team=team, unit="USD", amount=Decimal("50"))
    Budget.objects.create(team=team, member=bob, unit="USD", amount=Decimal("7"))
    carols = Budget.objects.create(team=team, member=other, unit="USD", amount=Decimal("3"))
    client.force_login(bob)
    response = client.get(reverse("budgets"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Team monthly budget" in body and "bob&#x27;s monthly budget" in body
    assert "carol" not in body
    assert "New budget" not in body and "Delete" not in body
    assert add(client).status_code == 404
    assert client.post(reverse("delete_budget", args=[team_budget.uuid])).status_code == 404
    assert client.post(reverse("delete_budget", args=[carols.uuid])).status_code == 404
    assert Budget.objects.count() == 3


def test_another_teams_budgets_are_not_shown(client_in, other_team):
    Budget.objects.create(team=other_team, unit="USD", amount=Decimal("123.4567"))
    assert "123.4567" not in client_in.get(reverse("budgets")).content.decode()


def test_spend_without_a_price_is_named_on_a_money_budget(client_in, team, user, settings):
    Budget.objects.create(team=team, unit="USD", amount=Decimal("5"))
    Entry.objects.create(kind=Entry.ADJUSTMENT, team=team, user=user, username="alice", provider="kwiki",
                         unit="kwiki_credit", amount=Decimal("8"), note="test")
    body = client_in.get(reverse("budgets")).content.decode()
    assert "no price set" in body and "8 Kwiki credits" in body


def test_a_hard_budget_made_on_the_page_refuses_a_run_before_it_is_sent(client_in, team, user):
    # seedream-v4 costs 3.5 KIE credits: one fits in 5, the second does not.
    assert add(client_in, provider="kie", unit="own", amount="5").status_code == 302
    factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse at dawn, budget page one")
    with pytest.raises(BudgetExceeded) as refused:
        factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse at dawn, budget page two")
    assert "1.5 KIE credits left" in str(refused.value)
    assert team.generations.count() == 1
    body = client_in.get(reverse("budgets")).content.decode()
    assert "3.5 KIE credits / 5 KIE credits" in body


def test_a_money_budget_uses_the_teams_own_price(client_in, team, user):
    # Default KIE price $0.005: 3.5 credits = $0.0175 fits in $0.02. At the
    # team's $0.01 it is $0.035 and is refused.
    assert add(client_in, amount="0.02").status_code == 302
    assert client_in.post(reverse("prices"), {"provider": "kie", "price": "0.01"}).status_code == 302
    with pytest.raises(BudgetExceeded):
        factories.job(team, user, "kie", "seedream-v4", prompt="a quiet harbour, team price")
    client_in.post(reverse("prices"), {"provider": "kie", "price": "", "clear": "1"})
    factories.job(team, user, "kie", "seedream-v4", prompt="a quiet harbour, default price")


def test_prices_page_shows_the_price_in_force_and_the_team_price_wins(client_in, team, other_team):
    body = client_in.get(reverse("prices")).content.decode()
    assert "$0.005</span>" in body and "(default)" in body and "no price set" in body
    response = client_in.post(reverse("prices"), {"provider": "kie", "price": "0.0042"})
    assert response.status_code == 302
    price = Prices(team).price("kie")
    assert (price.per_unit, price.source) == (Decimal("0.0042"), "team")
    assert Prices(other_team).price("kie").per_unit == Decimal("0.005")
    assert "$0.0042</span> per credit <span class=\"muted\">(this team's)" in client_in.get(reverse("prices")).content.decode()
    assert 'value="0.0042"' in client_in.get(reverse("prices")).content.decode()
    client_in.post(reverse("prices"), {"provider": "kie", "price": "", "clear": "1"})
    assert Prices(team).price("kie").source == "default"
    assert not CreditPrice.objects.exists()


@pytest.mark.parametrize("price, message", [("-1", "cannot be negative"), ("0.0000001", "6 decimal places"),
                                            ("abc", "Enter a number")])
def test_a_bad_price_gets_an_error_on_its_row(client_in, price, message):
    response = client_in.post(reverse("prices"), {"provider": "kie", "price": price})
    assert response.status_code == 400 and message in response.content.decode()
    assert not CreditPrice.objects.exists()


def test_members_cannot_set_prices(client, team, bob):
    client.force_login(bob)
    assert client.get(reverse("prices")).status_code == 200
    assert "<form" not in client.get(reverse("prices")).content.decode().split("<main")[1]
    assert client.post(reverse("prices"), {"provider": "kie", "price": "1"}).status_code == 404
    assert not CreditPrice.objects.exists()
