"""The Credits review page and its CSV export: who sees what, filters in
the URL, totals per unit with money only through a stated price, and a
query count that does not grow with the number of entries."""

import csv
from datetime import datetime, timedelta
from decimal import Decimal
import io
import uuid

from django.db import connection
from django.urls import reverse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
import pytest

from playground.accounts.models import Membership
from playground.ledger.models import Budget, Entry, ProviderBalance

from tests import factories


def spend(team, user, provider="kie", model="seedream-v4", amount="3.5", unit=None, *, kind=Entry.CAPTURE,
          when=None, reported=None, estimate=None, no_image=False):
    unit = unit or {"kie": "kie_credit", "kwiki": "kwiki_credit", "kvid": "kvid_credit", "kawai": "USD"}[provider]
    return Entry.objects.create(
        kind=kind, team=team, user=user, username=user.get_username(), generation_uuid=uuid.uuid4(),
        provider=provider, model=model, unit=unit, amount=Decimal(amount),
        estimate=Decimal(estimate if estimate is not None else amount),
        reported=None if reported is None else Decimal(reported),
        basis=Entry.REPORTED if reported is not None else Entry.ESTIMATE, no_image=no_image,
        created_at=when or timezone.now())


@pytest.fixture
def bob(team):
    b = factories.user("bob")
    Membership.objects.create(team=team, user=b, role=Membership.MEMBER)
    return b


@pytest.fixture(autouse=True)
def prices(settings):
    settings.CREDIT_PRICES = {"kie": "0.005"}


def page(client, query=""):
    response = client.get("/credits/" + query)
    assert response.status_code == 200
    return response.content.decode()


def export(client, query=""):
    response = client.get("/credits/export.csv" + query)
    assert response.status_code == 200
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_a_member_sees_only_their_own_lines_and_the_owner_sees_everyones(client, team, user, bob):
    spend(team, user, model="alice-model")
    spend(team, bob, model="bob-model", amount="7")
    client.force_login(bob)
    mine = page(client)
    assert "bob-model" in mine and "alice-model" not in mine
    assert "7 KIE credits" in mine
    # The team's total in the range, as a total only.
    assert "Whole team in this range: 10.5 KIE credits" in mine
    assert {r["model"] for r in export(client)} == {"bob-model"}
    # A member cannot widen the view with a member filter.
    assert {r["model"] for r in export(client, "?member=alice")} == {"bob-model"}

    client.force_login(user)
    theirs = page(client)
    assert "bob-model" in theirs and "alice-model" in theirs and "10.5 KIE credits" in theirs
    assert "By member" in theirs
    assert {r["model"] for r in export(client, "?member=bob")} == {"bob-model"}


def test_another_team_sees_nothing(client, team, user, other_user, other_team):
    spend(team, user, model="alpha-model")
    client.force_login(other_user)
    assert "alpha-model" not in page(client)
    assert export(client, "?status=all") == []


def test_totals_stay_in_their_units_and_money_names_what_has_no_price(client_in, team, user):
    spend(team, user, "kie", amount="3.5")
    spend(team, user, "kwiki", model="generate", amount="2")
    spend(team, user, "kawai", model="image-1", amount="0.04")
    html = page(client_in)
    assert "3.5 KIE credits" in html and "2 Kwiki credits" in html and "$0.04" in html
    # 3.5 KIE credits at $0.005 = $0.0175, plus $0.04; Kwiki has no price.
    assert "$0.0575" in html
    assert "no price set: 2 Kwiki credits" in html
    assert "Not in the chart (no price set): Kwiki AI" in html
    assert "<svg" in html


def test_filters_by_provider_model_date_and_status(client_in, team, user):
    spend(team, user, "kie", model="seedream-v4", amount="3.5")
    spend(team, user, "kwiki", model="generate", amount="2")
    spend(team, user, "kie", model="old-model", amount="9", when=timezone.now() - timedelta(days=70))
    spend(team, user, "kie", model="held-model", amount="4", kind=Entry.RESERVE)

    assert {r["model"] for r in export(client_in)} == {"seedream-v4", "generate"}
    assert {r["model"] for r in export(client_in, "?provider=kwiki")} == {"generate"}
    assert {r["model"] for r in export(client_in, "?model=seedream-v4")} == {"seedream-v4"}
    assert {r["model"] for r in export(client_in, "?status=reserve")} == {"held-model"}
    start = (timezone.now() - timedelta(days=80)).astimezone(team.zone).date().isoformat()
    assert "old-model" in {r["model"] for r in export(client_in, f"?start={start}")}
    html = page(client_in, "?provider=kwiki")
    assert "2 Kwiki credits" in html and "3.5 KIE credits" not in html
    # The CSV link carries the filters.
    assert "/credits/export.csv?provider=kwiki" in html


def test_bad_filters_get_a_message_not_an_error(client_in, team, user):
    html = page(client_in, "?start=not-a-date&provider=nope&end=2020-01-01&status=bogus")
    assert "Enter a valid date." in html
    assert "Select a valid choice." in html


def test_paid_no_image_is_its_own_line_and_reconciliation_shows_the_difference(client_in, team, user):
    spend(team, user, "kie", amount="3.5", no_image=True)
    spend(team, user, "kwiki", model="generate", amount="2", estimate="1.5", reported="2")
    html = page(client_in)
    assert "paid, no image" in html.lower()
    assert "Estimated" in html and "1.5 Kwiki credits" in html and "0.5 Kwiki credits" in html


def test_csv_rows_carry_unit_money_and_currency(client_in, team, user):
    e = spend(team, user, "kie", amount="3.5", no_image=True)
    spend(team, user, "kwiki", model="generate", amount="2", reported="2")
    rows = export(client_in)
    assert list(rows[0]) == ["created_at", "kind", "member", "provider", "model", "generation", "unit", "amount",
                             "estimate", "reported", "basis", "no_image", "money", "currency", "note"]
    kie = next(r for r in rows if r["provider"] == "kie")
    assert (kie["unit"], Decimal(kie["amount"]), Decimal(kie["money"]), kie["currency"]) == \
        ("kie_credit", Decimal("3.5"), Decimal("0.0175"), "USD")
    assert (kie["member"], kie["generation"], kie["no_image"]) == ("alice", str(e.generation_uuid), "yes")
    kwiki = next(r for r in rows if r["provider"] == "kwiki")
    assert (kwiki["unit"], kwiki["money"], kwiki["currency"], kwiki["basis"]) == ("kwiki_credit", "", "", "reported")


def test_budget_bars_balances_and_lifetime(client_in, team, user):
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("10"), period="month")
    ProviderBalance.objects.create(team=team, provider="kwiki", amount=Decimal("12"), unit="kwiki_credit")
    spend(team, user, "kie", amount="3.5")
    spend(team, user, "kie", amount="100", when=timezone.now() - timedelta(days=400))
    html = page(client_in)
    assert "6.5 KIE credits left" in html and "resets in" in html and "<meter" in html
    assert "12 Kwiki credits" in html
    assert "Lifetime: 103.5 KIE credits" in html


def count_queries(client):
    with CaptureQueriesContext(connection) as ctx:
        page(client, "?status=all")
    return len(ctx.captured_queries)


def test_the_page_runs_the_same_number_of_queries_for_many_entries(client_in, team, user, bob,
                                                                  django_assert_max_num_queries):
    Budget.objects.create(team=team, provider="", unit="USD", amount=Decimal("10"), period="month")
    spend(team, user, "kie")
    few = count_queries(client_in)
    for i in range(30):
        spend(team, bob if i % 2 else user, ["kie", "kwiki", "kawai"][i % 3], model=f"m{i}", amount="1",
              reported="1" if i % 3 == 1 else None, no_image=i % 5 == 0)
    with django_assert_max_num_queries(few):
        page(client_in, "?status=all")


def test_the_chart_stacks_priced_providers_per_day_and_leaves_unpriced_ones_out(team, user):
    from datetime import date

    from playground.ledger import chart
    from playground.ledger.prices import Prices

    rows = [{"day": date(2026, 3, 2), "provider": "kie", "unit": "kie_credit", "total": Decimal("200")},
            {"day": date(2026, 3, 2), "provider": "kawai", "unit": "USD", "total": Decimal("1")},
            {"day": date(2026, 3, 3), "provider": "kawai", "unit": "USD", "total": Decimal("0.5")},
            {"day": date(2026, 3, 3), "provider": "kwiki", "unit": "kwiki_credit", "total": Decimal("4")}]
    c = chart.build(rows, date(2026, 3, 1), date(2026, 3, 31), Prices(team))
    assert c.max_value == Decimal("2")  # 200 KIE credits at $0.005 + $1
    assert [label for _, label, _ in c.providers] == ["Kawai", "KIE.ai"]
    assert c.unpriced == ["Kwiki AI"]
    day2 = [b for b in c.bars if b.title.startswith("2026-03-02")]
    assert len(day2) == 2 and sum(b.height for b in day2) == pytest.approx(220 - 10 - 30)
    assert str(c.days[2][2]) == "4 Kwiki credits"  # the table keeps what the chart cannot show
    assert [str(a) for a in c.days[1][1]] == ["$1.00", "$1.00"]


def test_the_costliest_generations_are_ranked_in_money_with_their_thumbnails(client_in, team, user):
    factories.finished_job(team, user, "kie", "seedream-v4", prompt="a cheap pebble")  # 3.5 x $0.005
    dear = factories.finished_job(team, user, "kie", "flux-kontext", prompt="a dear pearl",
                                  model="flux-kontext-max")  # 12
    factories.finished_job(team, user, "kwiki", "generate", prompt="an unpriced shell", quality="hires",
                           credits=Decimal("2"))
    page = client_in.get(reverse("credits")).content.decode()
    top = page[page.index("Costliest generations"):page.index("<h2>Entries")]
    assert top.index("a dear pearl") < top.index("a cheap pebble")
    assert "$0.06" in top and "an unpriced shell" not in top
    assert reverse("image_thumb", args=[dear.images.get().uuid]) in top


@pytest.mark.parametrize("zone_name, start, end, moments", [
    # Berlin: summer time starts 2026-03-29 01:00 UTC and ends 2026-10-25 01:00 UTC.
    ("Europe/Berlin", "2026-03-27", "2026-03-31",
     ["2026-03-28T22:59:00", "2026-03-28T23:00:00", "2026-03-29T00:59:00", "2026-03-29T01:00:00",
      "2026-03-29T21:59:00", "2026-03-29T22:00:00", "2026-03-30T12:00:00"]),
    ("Europe/Berlin", "2026-10-23", "2026-10-27",
     ["2026-10-24T21:59:00", "2026-10-24T22:00:00", "2026-10-25T00:59:00", "2026-10-25T01:00:00",
      "2026-10-25T22:59:00", "2026-10-25T23:00:00"]),
    # A zone 5 h 45 min ahead, and one behind UTC.
    ("Asia/Kathmandu", "2026-05-01", "2026-05-03", ["2026-05-01T18:14:00", "2026-05-01T18:15:00"]),
    ("America/Los_Angeles", "2026-11-01", "2026-11-03",
     ["2026-11-01T06:59:00", "2026-11-01T07:00:00", "2026-11-01T08:00:00", "2026-11-02T07:59:00",
      "2026-11-02T08:00:00"]),
])
def test_spend_per_day_falls_on_the_teams_local_day_across_time_changes(team, user, zone_name, start, end, moments):
    """The chart's days are the team's calendar days, also on the days the
    clocks change (the SQLite path computes them in SQL, not per row in Python)."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from playground.ledger import review

    zone = ZoneInfo(zone_name)
    expected = {}
    for i, m in enumerate(moments):
        when = datetime.fromisoformat(m + "+00:00")
        spend(team, user, "kie", amount=str(10 ** i), when=when)
        day = when.astimezone(zone).date()
        expected[day] = expected.get(day, 0) + 10 ** i
    rows = review.per_day(Entry.objects.filter(team=team), zone, date.fromisoformat(start), date.fromisoformat(end))
    assert {r["day"]: int(r["total"]) for r in rows} == expected
