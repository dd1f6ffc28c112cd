"""Which budgets a run touches is one rule (budgets.applicable), and every
caller sees the same ones for the same case: the quote, the playground
form (its estimate and its submit), the compare grid (its quote and its
run) and the OpenAI-compatible API (through the run's API token, which adds
that token's budgets and no other). Each budget is counted in its own unit:
a provider budget in money needs the run's credits at their price, never
credits added to dollars."""

from decimal import Decimal
import html
import json

from django.urls import reverse
import pytest

from playground.accounts.models import ApiToken
from playground.compare import fanout
from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded, applicable
from playground.ledger.models import Budget, Entry

PROMPT = "a kite over a green hill"
RUN = {"prompt": PROMPT, "provider": "kie", "model": "seedream-v4"}  # 3.5 KIE credits, $0.0175


@pytest.fixture
def case(team, user, bob):
    """Budgets of every scope, each too small for one run (so each one that
    applies shows in a refusal), and the names of those a run of alice on
    KIE touches from the form, and through her token "ci"."""
    ci, ci_secret = ApiToken.issue(user, team, "ci")
    notebook, _ = ApiToken.issue(user, team, "notebook")

    def budget(**kw):
        kw.setdefault("amount", Decimal("1"))
        return Budget.objects.create(team=team, hard=kw.pop("hard", True), **kw)

    touched = [
        budget(unit="USD", amount=Decimal("0.01")),  # the team, all providers, in money
        budget(member=user, provider="kie", unit="kie_credit"),  # alice on KIE, in its credits
        budget(provider="kie", unit="USD", amount=Decimal("0.01"), period=Budget.WEEK),  # KIE, in money
    ]
    through_ci = [budget(member=user, api_token=ci, provider="kie", unit="kie_credit")]
    untouched = [
        budget(member=bob, provider="kie", unit="kie_credit"),  # another member
        budget(provider="kwiki", unit="kwiki_credit"),  # another provider
        budget(member=user, provider="kvid", unit="USD", amount=Decimal("0.01")),  # alice, another provider
        budget(member=user, api_token=notebook, provider="kie", unit="kie_credit"),  # another token
    ]
    return {"form": names(touched), "api": names(touched + through_ci),
            "never": names(untouched), "ci": ci, "ci_secret": ci_secret}


def names(budgets) -> set[str]:
    return {b.name for b in budgets}


def named_in(text: str, case) -> set[str]:
    """The case's budgets a page or a message names (and none it must not)."""
    text = html.unescape(text)
    found = {n for n in case["api"] | case["never"] if n in text}
    assert not found & case["never"], found & case["never"]
    return found


def test_the_rule_picks_team_member_provider_and_token_budgets(team, user, case):
    assert names(applicable(team, user, "kie")) == case["form"]
    assert names(applicable(team.pk, user.pk, "kie", api_token=case["ci"].pk)) == case["api"]
    assert names(applicable(team, user, "kie", api_token=case["ci"])) == case["api"]


def test_the_quote_and_the_forms_estimate_see_the_same_budgets(client_in, team, user, case):
    q = book.quote(team, user, "kie", Decimal("3.5"))
    assert names(s.budget for s in q.budgets) == names(s.budget for s in q.refused) == case["form"]
    # Each budget in its own unit: credits as credits, money through KIE's price.
    needs = {s.budget.name: str(s.needs) for s in q.budgets}
    assert needs == {"Team monthly budget for all providers": "$0.0175",
                     "alice's monthly budget for KIE.ai": "3.5 KIE credits",
                     "Team weekly budget for KIE.ai": "$0.0175"}
    estimate = client_in.get(reverse("estimate", args=["kie", "seedream-v4"]), HTTP_HX_REQUEST="true")
    assert named_in(estimate.content.decode(), case) == case["form"]
    through_ci = book.quote(team, user, "kie", Decimal("3.5"), api_token=case["ci"])
    assert names(s.budget for s in through_ci.refused) == case["api"]


def test_the_forms_submit_is_refused_by_the_same_budgets(client_in, case):
    page = client_in.post(reverse("playground") + "?provider=kie&model=seedream-v4", RUN).content.decode()
    assert "Over budget" in page and named_in(page, case) == case["form"]
    assert Generation.objects.count() == 0 and Entry.objects.count() == 0


def test_the_compare_grid_quotes_and_refuses_with_the_same_budgets(client_in, team, user, case):
    plan = fanout.Plan(rows=[(PROMPT, 7)], models=["kie:seedream-v4"]).build()
    assert names(s.budget for s in plan.quote(team, user)["budgets"]) == case["form"]
    form = {"prompt": PROMPT, "models": ["kie:seedream-v4"], "visibility": "team", "seeds": "7"}
    quoted = client_in.post(reverse("compare_new"), {**form, "action": "quote"}).content.decode()
    assert named_in(quoted, case) == case["form"]
    refused = client_in.post(reverse("compare_new"), {**form, "action": "run"})
    assert refused.status_code == 400 and named_in(refused.content.decode(), case) == case["form"]
    assert Generation.objects.count() == 0


def test_the_api_is_refused_by_the_same_budgets_and_its_tokens(client, case):
    r = client.post("/v1/images/generations", json.dumps({"model": "kie/seedream-v4", "prompt": PROMPT}),
                    content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {case['ci_secret']}")
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    assert named_in(r.json()["error"]["message"], case) == case["api"]
    assert Generation.objects.count() == 0 and Entry.objects.count() == 0


def test_soft_budgets_warn_every_caller_with_the_same_budgets(client_in, team, user, case):
    Budget.objects.filter(team=team).update(hard=False)
    assert names(s.budget for s in book.quote(team, user, "kie", Decimal("3.5")).warnings) == case["form"]
    plan = fanout.Plan(rows=[(PROMPT, 7)], models=["kie:seedream-v4"]).build()
    assert names(s.budget for s in plan.quote(team, user)["budgets"]) == case["form"]
    made = client_in.post(reverse("playground") + "?provider=kie&model=seedream-v4", RUN, follow=True)
    assert named_in(made.content.decode(), case) == case["form"] and Generation.objects.count() == 1
    # The API's path: pipeline.create through the token holds and warns the same way.
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": PROMPT},
                      api_token=case["ci"])
    assert names(s.budget for s in gen.budget_warnings) == case["api"]


def test_a_grid_adds_each_providers_cells_only_in_a_budgets_own_unit(team, user, settings):
    """Two seed rows of KIE (7 credits, $0.035) and Kawai ($0.08): the budget
    for all providers, in money, needs both ($0.115); KIE's, in its credits,
    only KIE's cells; Kawai's only Kawai's. Kwiki credits have no price: a
    money budget names them unpriced instead of adding them."""
    settings.CREDIT_PRICES = {"kie": "0.005"}
    Budget.objects.create(team=team, unit="USD", amount=Decimal("0.10"))
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("5"))
    Budget.objects.create(team=team, provider="kawai", unit="USD", amount=Decimal("0.05"))
    Budget.objects.create(team=team, provider="kwiki", unit="kwiki_credit", amount=Decimal("1"))
    plan = fanout.Plan(rows=[(PROMPT, 1), (PROMPT, 2)], models=["kie:seedream-v4", "kawai:generations"]).build()
    needs = {s.budget.name: str(s.needs) for s in plan.quote(team, user)["budgets"]}
    assert needs == {"Team monthly budget for all providers": "$0.115",
                     "Team monthly budget for KIE.ai": "7 KIE credits",
                     "Team monthly budget for Kawai": "$0.08"}
    plan = fanout.Plan(rows=[(PROMPT, 1)], models=["kie:seedream-v4", "kwiki:generate"]).build()
    over = {s.budget.name: s for s in plan.quote(team, user)["budgets"]}
    money = over["Team monthly budget for all providers"]
    assert str(money.needs) == "$0.0175" and money.run_unpriced.unit.code == "kwiki_credit"
    assert "no price is set for Kwiki credits" in money.refusal()


def test_a_hard_budget_still_refuses_inside_the_job_transaction(team, user, case):
    with pytest.raises(BudgetExceeded) as refused:
        create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": PROMPT})
    assert names(s.budget for s in refused.value.refused) == case["form"]
