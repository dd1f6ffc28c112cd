"""The ledger in the Django admin: entries and balances read-only, budgets
and prices editable."""

from decimal import Decimal

from django.contrib.auth import get_user_model
import pytest

from playground.ledger.models import Budget, CreditPrice, Entry, ProviderBalance


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    return client


@pytest.fixture
def rows(team, user):
    Entry.objects.create(kind=Entry.ADJUSTMENT, team=team, user=user, username="alice", provider="kie",
                         unit="kie_credit", amount=Decimal("-3"), note="refund")
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("100"))
    CreditPrice.objects.create(team=None, provider="kvid", price=Decimal("0.01"))
    ProviderBalance.objects.create(team=team, provider="kwiki", amount=Decimal("42"), unit="kwiki_credit")


@pytest.mark.parametrize("model", ["entry", "budget", "creditprice", "providerbalance"])
def test_superuser_sees_each_ledger_list(admin_client, rows, model):
    response = admin_client.get(f"/admin/ledger/{model}/")
    assert response.status_code == 200


def test_entry_list_shows_the_entry(admin_client, rows):
    body = admin_client.get("/admin/ledger/entry/").content.decode()
    assert "alice" in body and "kie_credit" in body


def test_entries_cannot_be_added_changed_or_deleted(admin_client, rows):
    entry = Entry.objects.get()
    assert admin_client.get("/admin/ledger/entry/add/").status_code == 403
    change = admin_client.get(f"/admin/ledger/entry/{entry.pk}/change/")
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert admin_client.post(f"/admin/ledger/entry/{entry.pk}/change/", {"amount": "5"}).status_code == 403
    assert admin_client.post(f"/admin/ledger/entry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Entry.objects.get().amount == Decimal("-3")
    assert admin_client.get("/admin/ledger/providerbalance/add/").status_code == 403


def test_budgets_and_prices_can_be_added(admin_client, team):
    assert admin_client.get("/admin/ledger/budget/add/").status_code == 200
    response = admin_client.post("/admin/ledger/creditprice/add/", {
        "provider": "kwiki", "price": "0.002", "updated_at_0": "2026-01-01", "updated_at_1": "00:00:00"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CreditPrice.objects.get(provider="kwiki").team is None


def test_entries_are_found_by_generation_uuid_or_username(admin_client, team, user):
    import uuid

    gen = uuid.uuid4()
    Entry.objects.create(kind=Entry.RESERVE, team=team, user=user, username="alice", provider="kie",
                         model="seedream-v4", unit="kie_credit", amount=Decimal("3.5"), generation_uuid=gen)
    Entry.objects.create(kind=Entry.RESERVE, team=team, user=None, username="zed", provider="kie",
                         model="seedream-v4", unit="kie_credit", amount=Decimal("7"), generation_uuid=uuid.uuid4())
    found = admin_client.get("/admin/ledger/entry/", {"q": str(gen)})
    assert found.status_code == 200
    assert list(found.context["cl"].result_list.values_list("username", flat=True)) == ["alice"]
    by_name = admin_client.get("/admin/ledger/entry/", {"q": "zed"})
    assert list(by_name.context["cl"].result_list.values_list("username", flat=True)) == ["zed"]
