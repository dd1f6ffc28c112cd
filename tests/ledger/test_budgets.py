"""Budgets hold before anything is sent: hard ones refuse, soft ones warn,
money budgets count credits only through a stated price, periods follow the
team's time zone, and 100 simultaneous submissions against a budget that
allows 10 make exactly 10 jobs."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
import threading
import zoneinfo

from django.db import connection, connections
import pytest

from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded, period_bounds, status
from playground.ledger.models import Budget, CreditPrice, Entry
from playground.ledger.prices import Prices

from tests import factories


def budget(team, **kw):
    kw.setdefault("unit", "USD")
    kw.setdefault("period", Budget.MONTH)
    return Budget.objects.create(team=team, **kw)


def test_a_hard_budget_refuses_before_anything_is_made_naming_what_is_left(team, user):
    budget(team, provider="kie", unit="kie_credit", amount=Decimal("5"))
    factories.job(team, user, "kie", "seedream-v4", prompt="a first lantern")  # 3.5 of 5
    with pytest.raises(BudgetExceeded) as refused:
        factories.job(team, user, "kie", "seedream-v4", prompt="a second lantern")
    message = refused.value.message
    assert "Team monthly budget for KIE.ai" in message
    assert "1.5 KIE credits left of 5 KIE credits" in message and "needs 3.5 KIE credits" in message
    assert "Nothing was sent" in message
    assert Generation.objects.count() == 1 and Entry.objects.filter(kind=Entry.RESERVE).count() == 1


def test_a_money_budget_counts_kie_credits_at_the_documented_price(team, user):
    budget(team, amount=Decimal("0.04"))  # all providers, $0.04: two runs of 3.5 credits x $0.005
    factories.job(team, user, "kie", "seedream-v4", prompt="a copper bell")
    factories.job(team, user, "kie", "seedream-v4", prompt="a brass bell")
    with pytest.raises(BudgetExceeded) as refused:
        factories.job(team, user, "kie", "seedream-v4", prompt="an iron bell")
    assert "$0.005 left of $0.04" in refused.value.message and "needs $0.0175" in refused.value.message


def test_a_money_budget_refuses_credits_with_no_price_and_says_so(team, user):
    budget(team, amount=Decimal("100"))
    with pytest.raises(BudgetExceeded) as refused:
        factories.job(team, user, "kwiki", "generate", prompt="a garden gate")
    assert "no price is set for Kwiki credits" in refused.value.message
    CreditPrice.objects.create(team=team, provider="kwiki", price=Decimal("0.02"))
    gen = factories.job(team, user, "kwiki", "generate", prompt="a garden gate")
    assert gen.pk and Prices(team).price("kwiki").source == "team"


def test_a_soft_budget_warns_and_allows(team, user):
    budget(team, provider="kie", unit="kie_credit", amount=Decimal("1"), hard=False)
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a paper fan")
    assert gen.pk and len(gen.budget_warnings) == 1
    assert "(soft)" in gen.budget_warnings[0].warning()


def test_member_budgets_touch_only_that_member(team, user):
    bob = factories.user("bob")
    team.memberships.create(user=bob, role="member")
    budget(team, member=bob, provider="kie", unit="kie_credit", amount=Decimal("3"))
    factories.job(team, user, "kie", "seedream-v4", prompt="a reed boat")  # alice: not limited
    with pytest.raises(BudgetExceeded) as refused:
        factories.job(team, bob, "kie", "seedream-v4", prompt="a reed basket")
    assert "bob's monthly budget" in refused.value.message


def test_n_images_reserve_n_times_the_per_image_price(team, user):
    one = factories.job(team, user, "kvid", "text-to-image", prompt="a glass jar", num_images=1)
    three = factories.job(team, user, "kvid", "text-to-image", prompt="a glass jar", num_images=3)
    held = dict(Entry.objects.filter(kind=Entry.RESERVE).values_list("generation_id", "amount"))
    assert held[three.pk] == 3 * held[one.pk] > 0


def test_released_reservations_free_the_budget_and_captures_count(team, user):
    b = budget(team, provider="kie", unit="kie_credit", amount=Decimal("7"))
    factories.failed_job(team, user, "kie", "seedream-v4", prompt="a stone arch, failed")
    factories.finished_job(team, user, "kie", "seedream-v4", prompt="a stone arch")
    assert status(b, Prices(team)).used.value == Decimal("3.5")  # the failure released, the success captured
    factories.job(team, user, "kie", "seedream-v4", prompt="a stone bridge")  # fits again, and is held
    assert status(b, Prices(team)).used.value == Decimal("7")
    with pytest.raises(BudgetExceeded):
        factories.job(team, user, "kie", "seedream-v4", prompt="a stone tower")


def test_periods_start_at_midnight_in_the_team_time_zone():
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 11, 30, 16, 30, tzinfo=dt_timezone.utc)  # already 1 December in Tokyo
    start, end = period_bounds(Budget.MONTH, tokyo, now)
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=tokyo), datetime(2027, 1, 1, tzinfo=tokyo))
    start, end = period_bounds(Budget.MONTH, zoneinfo.ZoneInfo("UTC"), now)
    assert start.month == 11 and end.month == 12
    start, end = period_bounds(Budget.WEEK, tokyo, now)
    assert start.weekday() == 0 and (end - start).days == 7 and start <= now.astimezone(tokyo) < end
    assert period_bounds(Budget.NONE, tokyo, now) == (None, None)


def test_last_months_spend_does_not_count_this_month_but_history_stays(team, user):
    b = budget(team, provider="kie", unit="kie_credit", amount=Decimal("5"))
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="an old map")
    Entry.objects.filter(generation=gen).update(created_at=datetime(2020, 1, 15, tzinfo=dt_timezone.utc))
    assert status(b, Prices(team)).used.value == 0
    factories.job(team, user, "kie", "seedream-v4", prompt="a new map")
    assert Entry.objects.filter(kind=Entry.RESERVE).count() == 2  # lifetime history kept


# --- 100 simultaneous submissions against a budget that allows 10 ---------------


@pytest.mark.django_db(transaction=True)
def test_a_hundred_simultaneous_submissions_make_exactly_ten_jobs(monkeypatch):
    # 100 threads of one process take turns for the GIL as well as for
    # SQLite's writer lock: on a slow machine a turn can come after the 20 s
    # a writer waits by default. What is tested is the count, not the wait.
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 300)
    owner = factories.user("olga")
    team = factories.team("Race", owner=owner)
    # $0.175 = 10 runs of 3.5 KIE credits at $0.005
    budget(team, amount=Decimal("0.175"))
    n = 100
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("SHOW max_connections")
            limit = int(c.fetchone()[0])
        threads = min(n, limit - 15)  # leave room for the test's own and other sessions
    else:
        threads = n
    barrier = threading.Barrier(threads)

    def submit(i):
        try:
            if i < threads:
                barrier.wait(timeout=60)
            try:
                create.create(team=team, owner=owner, provider="kie", model="seedream-v4",
                            params={"prompt": f"a small boat number {i}"})
                return "made"
            except BudgetExceeded as e:
                assert "Team monthly budget for all providers" in e.message and "needs $0.0175" in e.message
                return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(submit, range(n)))
    assert results.count("made") == 10 and results.count("refused") == 90
    assert Generation.objects.filter(team=team).count() == 10
    assert Entry.objects.filter(team=team, kind=Entry.RESERVE).count() == 10
    b = Budget.objects.get(team=team)
    assert status(b, Prices(team)).used.value == Decimal("0.175")


def test_the_form_says_when_a_run_goes_over_a_soft_budget(client_in, team, user):
    from django.urls import reverse

    budget(team, provider="kie", unit="kie_credit", amount=Decimal("1"), hard=False)
    url = reverse("playground") + "?provider=kie&model=seedream-v4"
    quote = client_in.get(reverse("estimate", args=["kie", "seedream-v4"]), HTTP_HX_REQUEST="true").content.decode()
    assert "goes over this soft budget" in quote
    made = client_in.post(url, {"prompt": "a wooden spoon", "provider": "kie", "model": "seedream-v4"},
                          HTTP_HX_REQUEST="true").content.decode()
    assert Generation.objects.count() == 1
    assert "Team monthly budget for KIE.ai (soft)" in made and "goes over" in made
    plain = client_in.post(url, {"prompt": "a wooden fork", "provider": "kie", "model": "seedream-v4"}, follow=True)
    assert Generation.objects.count() == 2 and "(soft)" in plain.content.decode()


def test_an_owner_sets_the_team_time_zone_and_a_bad_one_is_refused(client_in, team):
    from django.urls import reverse

    assert 'value="Asia/Tokyo"' in client_in.get(reverse("team")).content.decode()
    client_in.post(reverse("team_settings"), {"name": "Alpha", "time_zone": "Asia/Tokyo"})
    team.refresh_from_db()
    assert team.time_zone == "Asia/Tokyo" and team.zone == zoneinfo.ZoneInfo("Asia/Tokyo")
    page = client_in.post(reverse("team_settings"), {"name": "Alpha", "time_zone": "Mars/Olympus"}, follow=True)
    team.refresh_from_db()
    assert team.time_zone == "Asia/Tokyo" and "Unknown time zone" in page.content.decode()
