"""API tokens in a real browser, on a laptop and a phone: from the user
menu to the Account page, make a token with an expiry date, a model
allowlist and a budget; the secret is shown once with a copy button, gone
when the page is opened again (only its last four stay); revoke it and it reads revoked."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from playground.accounts.models import ApiToken
from playground.ledger.models import Budget

from tests.browser.helpers import log_in, shot
from tests.browser.test_browser_cards import LAPTOP, PHONE, no_sideways_scroll

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_a_token_is_made_shown_once_and_revoked(page, team, user, size):
    page.set_viewport_size(size)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page)
    page.locator("details.user-menu summary").click()
    page.get_by_role("link", name="Account and API tokens").click()
    expect(page.locator("h1")).to_have_text("Account")
    account_url = page.url
    expect(page.locator("#tokens")).to_contain_text("No API tokens in Alpha yet")

    day = (timezone.now() + timedelta(days=20)).date()
    form = page.locator("#new-token-form")
    form.get_by_label("Name").fill("nightly build")
    form.get_by_label("Expires").select_option("date")
    form.get_by_label("Expiry date").fill(day.isoformat())
    form.get_by_label("Models").select_option(["kie/seedream-v4", "kawai/generations"])
    form.get_by_label("Requests per minute").fill("20")
    form.locator("#id_budget-amount").fill("10")
    form.locator("#id_budget-counted_in").select_option("kie")
    form.get_by_role("button", name="Create token").click()

    shown = page.get_by_test_id("new-token")
    expect(shown).to_contain_text("it will not be shown again")
    secret = shown.locator("input[data-secret]").input_value()
    token = ApiToken.find(secret)
    assert token is not None and token.name == "nightly build" and "ipg_" not in page.url
    assert token.allowed_models == ["kie/seedream-v4", "kawai/generations"] and token.rate_per_minute == 20
    assert Budget.objects.get(api_token=token).unit == "kie_credit"
    shown.get_by_role("button", name="Copy").click()
    expect(shown.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = page.locator(f"#token-{token.uuid}")
    expect(row).to_contain_text(f"...{token.last4}")
    expect(row).to_contain_text("0 KIE credits / 10 KIE credits")
    assert no_sideways_scroll(page), "the account page scrolls sideways"
    shot(page, f"api-token-new-{size['width']}")

    page.goto(account_url)  # the page again (the POST's answer was the only place the secret was)
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert secret not in page.content()
    row = page.locator(f"#token-{token.uuid}")
    expect(row).to_contain_text(f"...{token.last4}")
    expect(row.locator("td[data-label='State']")).to_have_text("active")
    expect(row.locator("td[data-label='Expires']")).to_contain_text((day + timedelta(days=1)).isoformat())
    expect(row.locator("td[data-label='Models']")).to_contain_text("kie/seedream-v4, kawai/generations")
    if size is PHONE:
        label = row.locator("td[data-label='Token']").evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"Token"', label

    row.get_by_role("button", name="Revoke nightly build").click()
    expect(page.locator(".messages")).to_contain_text("revoked")
    row = page.locator(f"#token-{token.uuid}")
    expect(row.locator("td[data-label='State']")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke nightly build")).to_have_count(0)
    token.refresh_from_db()
    assert token.state == "revoked"
    assert no_sideways_scroll(page), "the account page scrolls sideways"
    shot(page, f"api-token-revoked-{size['width']}")
    assert not page.problems, page.problems
