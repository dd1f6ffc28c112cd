"""An owner's credit pages in a real browser, on a laptop and a phone: set a
price per credit, add a budget (a mistake is said on its field), see it in the
quote and on the Credits page, whose rows read as labelled lines on a phone."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from playground.ledger.models import Budget, CreditPrice

from tests.browser.helpers import log_in, shot
from tests.browser.test_browser_cards import LAPTOP, PHONE, finished_jobs, no_sideways_scroll

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_an_owner_sets_a_price_and_a_budget_and_reads_them_back(page, worker, team, user, size):
    page.set_viewport_size(size)
    finished_jobs(team, user, 1)  # 3.5 KIE credits spent this month
    log_in(page)

    # A price for Kwiki credits (none by default).
    page.goto("/credits/prices/")
    row = page.locator("#price-kwiki")
    expect(row).to_contain_text("no price set")
    row.get_by_label("Price per credit").fill("0.02")
    row.get_by_role("button", name="Set").click()
    expect(page.locator("#price-kwiki")).to_contain_text("$0.02 per credit")
    assert CreditPrice.objects.get(team=team, provider="kwiki").price == Decimal("0.02")

    # A budget in KIE credits for all providers is a mistake, said on its field.
    page.goto("/credits/budgets/")
    page.get_by_label("Counted in").select_option("own")
    page.get_by_label("Limit").fill("20")
    page.get_by_role("button", name="Add budget").click()
    expect(page.locator(".field-errors")).to_contain_text("A budget for all providers is counted in money")
    assert not Budget.objects.exists()
    assert page.problems == [f"HTTP 400: POST {page.url}"]  # the form sent back with its error
    page.problems.clear()
    page.get_by_label("Provider").select_option("kie")
    page.get_by_label("Counted in").select_option("own")
    page.get_by_label("Limit").fill("20")
    page.get_by_role("button", name="Add budget").click()
    budget_row = page.locator("tr.budget-row")
    expect(budget_row).to_contain_text("16.5 KIE credits")  # 20 - 3.5 spent
    expect(budget_row).to_contain_text("resets in")
    assert no_sideways_scroll(page), "the budgets page scrolls sideways"
    shot(page, f"budgets-{size['width']}")

    # The quote on the form counts against it.
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.get_by_test_id("quote-budget")).to_contain_text("16.5 KIE credits left")

    # The Credits page names the model as the playground does and, on a
    # phone, labels each figure.
    page.goto("/credits/")
    models = page.locator("td[data-label='Model']")
    expect(models.first).to_contain_text("Seedream V4")
    expect(page.locator("ul.budget-bars")).to_contain_text("16.5 KIE credits left")
    if size is PHONE:
        jobs_cell = page.locator("td[data-label='Jobs']").first
        label = jobs_cell.evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"Jobs"', label
    assert no_sideways_scroll(page), "the credits page scrolls sideways"
    shot(page, f"credits-owner-{size['width']}")
    assert not page.problems, page.problems
