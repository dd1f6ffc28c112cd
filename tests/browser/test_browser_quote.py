"""The quote and a budget refusal in a real browser: the form says what a
run costs in its unit and in money and what the budget has left; a run over
a hard budget is refused on the form, with nothing created."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from playground.generations.models import Generation
from playground.ledger.models import Budget

from tests.browser.helpers import log_in, shot

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_the_quote_follows_the_form_and_a_hard_budget_refuses_on_it(page, worker, team, user, viewport):
    page.set_viewport_size(viewport)
    # $0.05: Kontext Pro (8 credits = $0.04) fits, Max (12 credits = $0.06) does not.
    Budget.objects.create(team=team, unit="USD", amount=Decimal("0.05"), period=Budget.MONTH, hard=True)
    log_in(page)
    page.goto("/?provider=kie&model=flux-kontext")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("8 KIE credits")
    budget_line = page.get_by_test_id("quote-budget")
    expect(budget_line).to_contain_text("Team monthly budget for all providers: $0.05 left")
    expect(budget_line).to_contain_text("this run needs $0.04")
    expect(page.get_by_test_id("estimate")).to_contain_text("about $0.04")
    page.locator("#id_model").select_option("flux-kontext-max")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("12 KIE credits")
    expect(budget_line).to_contain_text("over budget: this run would be refused")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a lighthouse keeper's lamp on a table")
    page.get_by_role("button", name="Generate").click()
    refusal = page.locator("#model-form p.error").first
    expect(refusal).to_contain_text("Over budget.")
    expect(refusal).to_contain_text("$0.05 left of $0.05, and this run needs $0.06")
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("a lighthouse keeper's lamp on a table")
    assert Generation.objects.count() == 0
    shot(page, f"quote-refused-{viewport['width']}")
    assert not page.problems, page.problems
