"""A budget scoped to one API token: it holds only the runs made through
that token (under the same lock as every budget), names the token when it
refuses, and keeps counting a run after its generation is deleted."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import threading

from django.db import connections
import pytest

from playground.accounts.models import ApiToken
from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded, status
from playground.ledger.models import Budget, Entry
from playground.ledger.prices import Prices

from tests import factories


def run(team, user, prompt, token=None):
    return create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": prompt},
                       api_token=token)


def token_budget(token, amount, **kw):
    kw.setdefault("provider", "kie")
    kw.setdefault("unit", "kie_credit")
    return Budget.objects.create(team=token.team, member=token.user, api_token=token, amount=Decimal(amount),
                                 period=kw.pop("period", Budget.MONTH), **kw)


def test_a_token_budget_refuses_a_run_through_the_token_but_not_the_same_user_on_the_form(team, user):
    token, _ = ApiToken.issue(user, team, "ci")
    token_budget(token, "5")  # one run of 3.5 KIE credits
    run(team, user, "a first kite", token)
    with pytest.raises(BudgetExceeded) as refused:
        run(team, user, "a second kite", token)
    message = refused.value.message
    assert "API token 'ci' budget (monthly for KIE.ai)" in message
    assert "1.5 KIE credits left of 5 KIE credits" in message and "needs 3.5 KIE credits" in message
    assert "Nothing was sent" in message
    # The same user without the token (the form) is not held by it.
    run(team, user, "a third kite")
    run(team, user, "a fourth kite")
    assert Generation.objects.filter(api_token=token).count() == 1 and Generation.objects.count() == 3
    # And another token of the same user is not held by it either.
    other, _ = ApiToken.issue(user, team, "notebook")
    run(team, user, "a fifth kite", other)
    # The quote for a run through the token says it would not fit.
    q = book.quote(team, user, "kie", Decimal("3.5"), api_token=token)
    assert [s.budget.api_token_id for s in q.refused] == [token.pk]
    assert book.quote(team, user, "kie", Decimal("3.5")).refused == []


def test_a_token_budget_keeps_counting_a_run_whose_generation_was_deleted(team, user):
    token, _ = ApiToken.issue(user, team, "ci")
    b = token_budget(token, "10", provider="", unit="USD")  # money: 3.5 credits x $0.005
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a paper boat", api_token=token)
    used = status(b, Prices(team)).used.value
    assert used == Decimal("0.0175")
    gen.delete()
    assert Entry.objects.filter(api_token=token, kind=Entry.CAPTURE, generation__isnull=True).count() == 1
    assert status(b, Prices(team)).used.value == used


def test_team_and_member_budgets_still_hold_runs_through_a_token(team, user):
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("5"))
    token, _ = ApiToken.issue(user, team, "ci")
    run(team, user, "a tin cup", token)
    with pytest.raises(BudgetExceeded) as refused:
        run(team, user, "a tin plate", token)
    assert "Team monthly budget for KIE.ai" in refused.value.message


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_through_one_token_never_overspend_its_budget():
    owner = factories.user("olga")
    team = factories.team("Race", owner=owner)
    token, _ = ApiToken.issue(owner, team, "ci")
    token_budget(token, "17.5")  # 5 runs of 3.5 KIE credits
    n = 30
    barrier = threading.Barrier(n)

    def submit(i):
        try:
            barrier.wait(timeout=60)
            try:
                run(team, owner, f"a small boat number {i}", token)
                return "made"
            except BudgetExceeded as e:
                assert "API token 'ci' budget" in e.message
                return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(submit, range(n)))
    assert results.count("made") == 5 and results.count("refused") == n - 5
    assert Entry.objects.filter(team=team, kind=Entry.RESERVE, api_token=token).count() == 5
    # The form is still free of it.
    run(team, owner, "one more boat from the form")
