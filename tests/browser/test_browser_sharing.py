"""Two teammates in real browsers: bob makes a generation shared with the
team; alice opens it, sees who made it, remixes it, and her new generation
says "Remix of" with a link back; bob's page lists her remix under what was
made from it. An adult result of bob's is blurred for alice until she
clicks Reveal."""

import re

import pytest
from playwright.sync_api import expect

from playground.generations.models import Generation

from tests import factories
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.helpers import log_in, shot

pytestmark = pytest.mark.browser


@pytest.fixture
def bob(page, team):
    bob = factories.user("bob")
    team.memberships.create(user=bob, role="member")
    return bob


@pytest.fixture
def alice_page(browser, app, user):
    context = browser.new_context(base_url=app.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    p.problems = []
    p.on("pageerror", lambda e: p.problems.append(f"page error: {e}"))
    p.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
         and p.problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"))
    yield p
    context.close()


def generate(page, prompt):
    page.get_by_role("textbox", name="Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job").first
    expect(card).to_contain_text(prompt)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    return Generation.objects.get(params__prompt=prompt)


def test_a_teammate_remixes_a_shared_generation_and_both_pages_link(page, alice_page, worker, team, user, bob):
    # Bob: the box says shared (his default), and the job is shared.
    log_in(page, "bob", "pw-bob-123")
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.get_by_label("Share with the team")).to_be_checked()
    theirs = generate(page, "a red lighthouse on a green hill")
    assert theirs.visibility == Generation.SHARED and theirs.owner == bob

    # Alice opens it: who made it, shared; no owner controls.
    a = alice_page
    log_in(a, "alice", "pw-alice-123")
    a.goto(theirs.get_absolute_url())
    expect(a.get_by_test_id("made-by")).to_have_text("by bob")
    expect(a.get_by_test_id("visibility")).to_have_text("Shared with the team")
    expect(a.locator(".full-images img")).to_have_count(1)
    assert a.locator(".full-images img").evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    shot(a, "sharing-teammate-view")

    # She remixes it: the form is filled with his prompt, and her job records the remix.
    a.locator("article.job").get_by_role("link", name="Remix").click()
    prompt = a.get_by_role("textbox", name="Prompt", exact=True)
    expect(prompt).to_have_value("a red lighthouse on a green hill")
    mine = generate(a, "a red lighthouse on a green hill, in snow")
    assert mine.remix_of == theirs and mine.owner == user
    a.locator("#jobs article.job").first.get_by_role("link", name="Details").click()
    came = a.get_by_test_id("came-from")
    expect(came).to_contain_text("Remix of")
    expect(came).to_contain_text("by bob")
    shot(a, "sharing-remix-lineage")
    came.get_by_role("link").first.click()
    expect(a).to_have_url(re.compile(re.escape(theirs.get_absolute_url()) + "$"))

    # Bob's page lists her remix under what was made from it.
    page.goto(theirs.get_absolute_url())
    made = page.get_by_test_id("made-from")
    expect(made).to_contain_text("remix")
    expect(made).to_contain_text("by alice")
    expect(made.locator(f'a[href="{mine.get_absolute_url()}"]')).to_have_count(1)
    expect(page.get_by_test_id("made-by")).to_have_text("by you")
    shot(page, "sharing-made-from-it")
    assert not page.problems, page.problems
    assert not a.problems, a.problems


def test_an_adult_result_is_blurred_for_a_teammate_until_revealed(page, alice_page, worker, team, user, bob):
    log_in(page, "bob", "pw-bob-123")
    page.goto("/?provider=kie&model=seedream-v4")
    theirs = generate(page, "a portrait study in charcoal")
    Generation.objects.filter(pk=theirs.pk).update(is_adult=True)
    a = alice_page
    log_in(a, "alice", "pw-alice-123")
    a.goto(theirs.get_absolute_url())
    img = a.locator(".full-images img")
    assert "blur" in img.evaluate("el => getComputedStyle(el).filter")
    shot(a, "sharing-adult-blurred")
    a.get_by_test_id("reveal").click()
    expect(a.get_by_test_id("reveal")).to_be_hidden()
    assert img.evaluate("el => getComputedStyle(el).filter") == "none"
    assert a.url.endswith(theirs.get_absolute_url()), "revealed in place, no navigation"
    # Its owner never sees it blurred.
    page.goto(theirs.get_absolute_url())
    assert page.locator(".full-images img").evaluate("el => getComputedStyle(el).filter") == "none"
    expect(page.get_by_test_id("reveal")).to_have_count(0)
    assert not a.problems, a.problems
