"""Owners record signed adjustments with a reason; members only read them;
an adjustment counts in the spend and the budgets."""

from decimal import Decimal

from django.urls import reverse

from playground.ledger.budgets import status
from playground.ledger.models import Budget, Entry
from playground.ledger.prices import Prices

from tests import factories


def test_an_owner_records_a_refund_and_it_counts_against_spend(client_in, team, user):
    budget = Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("10"))
    factories.job(team, user, "kie", "seedream-v4", prompt="a pottery wheel")  # 3.5 held
    response = client_in.post(reverse("adjustments"), {"provider": "kie", "member": str(user.pk),
                                                       "amount": "-2", "note": "refund for a blurry batch"})
    assert response.status_code == 302
    entry = Entry.objects.get(kind=Entry.ADJUSTMENT)
    assert (entry.amount, entry.unit, entry.user, entry.created_by, entry.note) == (
        Decimal("-2"), "kie_credit", user, user, "refund for a blurry batch")
    assert status(budget, Prices(team)).used.value == Decimal("1.5")
    page = client_in.get(reverse("adjustments")).content.decode()
    assert "refund for a blurry batch" in page and "-2 KIE credits" in page


def test_bad_adjustments_get_errors_on_their_fields(client_in, team):
    response = client_in.post(reverse("adjustments"), {"provider": "nope", "amount": "0", "note": "  "})
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"provider", "amount", "note"}
    long_note = client_in.post(reverse("adjustments"), {"provider": "kie", "amount": "1", "note": "x" * 501})
    assert "note" in long_note.context["form"].errors
    assert not Entry.objects.filter(kind=Entry.ADJUSTMENT).exists()


def test_a_member_cannot_record_one_and_another_team_sees_none(client, team, user, other_team, other_user):
    bob = factories.user("bob")
    team.memberships.create(user=bob, role="member")
    client.force_login(bob)
    assert client.post(reverse("adjustments"), {"provider": "kie", "amount": "5", "note": "free credits"}).status_code == 404
    assert not Entry.objects.filter(kind=Entry.ADJUSTMENT).exists()
    from playground.ledger import book

    book.adjust(team=team, provider="kie", amount=Decimal("-1"), note="a secret refund", by=user)
    client.force_login(other_user)
    assert "a secret refund" not in client.get(reverse("adjustments")).content.decode()
