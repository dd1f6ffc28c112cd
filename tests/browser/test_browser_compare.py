"""A 3-model comparison in a real browser, from the form to a vote: the
live quote, the grid filling in by its one polling request, the lightbox
(the gallery's: left/right keys), the slider overlay, and a vote that counts
on the leaderboard."""

import pytest
from playwright.sync_api import expect

from playground.compare.models import Comparison, Vote

from tests.browser.helpers import log_in, shot

pytestmark = pytest.mark.browser

MODELS = ["KIE.ai - Seedream V4", "kvid.ai - Nano Banana: text to image", "Kawai - Generate"]


@pytest.mark.parametrize("size", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_a_three_model_comparison_from_start_to_vote(page, worker, team, user, size):
    page.set_viewport_size(size)
    polls = []
    page.on("request", lambda r: "/cells" in r.url and polls.append(r.url))
    log_in(page)
    page.goto("/compare/")
    page.get_by_role("link", name="New comparison").click()
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a wooden boat on a quiet lake")
    page.get_by_label("Seed(s)").fill("42")
    page.get_by_label("Aspect ratio").select_option("16:9")
    for label in MODELS:
        page.get_by_label(label, exact=True).check()
    quote = page.get_by_test_id("quote")
    expect(quote).to_contain_text("3 cells")
    expect(quote).to_contain_text("KIE credits")
    shot(page, f"compare-new-{size['width']}", full_page=True)
    page.get_by_role("button", name="Run comparison").click()
    page.wait_for_url("**/compare/*/")
    grid = page.get_by_test_id("compare-grid")
    expect(grid).to_have_attribute("data-final", "yes", timeout=30_000)
    expect(page.locator("#compare-grid .compare-cell img")).to_have_count(3)
    assert len({u for u in polls}) == 1  # one URL polled for the whole grid
    expect(page.get_by_test_id("not-used")).to_contain_text("not used: seed")
    expect(page.get_by_test_id("summary")).to_contain_text("failures 0 of 1")
    # Enlarge, then step with the arrow keys (and the buttons).
    first = page.locator("#compare-grid .compare-enlarge").first
    first.click()
    box = page.get_by_test_id("lightbox")
    expect(box).to_be_visible()
    assert box.evaluate("d => d.tagName === 'DIALOG' && d.matches(':modal')")
    caption = box.locator(".lb-caption")
    expect(caption).to_have_text(f"Row 1, {MODELS[0]}")
    expect(box.locator(".lb-pos")).to_have_text("1 of 3")
    expect(box.locator(".lb-detail")).to_be_visible()  # not blind: the job's page
    page.keyboard.press("ArrowRight")
    expect(caption).to_have_text(f"Row 1, {MODELS[1]}")
    box.get_by_role("button", name="Next").click()
    expect(caption).to_have_text(f"Row 1, {MODELS[2]}")
    expect(box.get_by_role("button", name="Next")).to_be_disabled()  # the last
    page.keyboard.press("ArrowRight")
    expect(caption).to_have_text(f"Row 1, {MODELS[2]}")
    page.keyboard.press("ArrowLeft")
    expect(caption).to_have_text(f"Row 1, {MODELS[1]}")
    src = page.locator("#compare-grid .compare-enlarge").nth(1).get_attribute("href")
    img = box.locator(".lb-img")
    expect(img).to_have_attribute("src", src)
    expect(img).to_have_js_property("complete", True)
    shown, close = img.bounding_box(), box.get_by_role("button", name="Close").bounding_box()
    for b in (shown, close):
        assert b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= size["width"] and b["y"] + b["height"] <= size["height"], b
    shot(page, f"compare-lightbox-{size['width']}", full_page=False)
    page.keyboard.press("Escape")
    expect(box).not_to_be_visible()
    expect(first).to_be_focused()
    # Slide two cells against each other.
    picks = page.locator(".compare-slide-pick")
    picks.nth(0).click()
    picks.nth(2).click()
    expect(page.locator("#compare-slider")).to_be_visible()
    page.locator("#compare-slider-range").fill("20")
    shot(page, f"compare-slider-{size['width']}", full_page=False)
    page.keyboard.press("Escape")
    # Vote for the kvid cell.
    page.locator("td.compare-vote").get_by_label(MODELS[1]).check()
    page.get_by_role("button", name="Vote", exact=True).click()
    expect(page.get_by_role("button", name="Change vote")).to_be_visible()
    comp = Comparison.objects.get()
    vote = Vote.objects.get(row__comparison=comp, user=user)
    assert vote.cell.provider == "kvid"
    shot(page, f"compare-grid-{size['width']}", full_page=True)
    # The grid scrolls inside its own box on a phone; the page itself never sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    page.get_by_role("link", name="Leaderboard").click()
    expect(page.get_by_test_id("standing").first).to_contain_text("kvid.ai")
    expect(page.get_by_test_id("standing").first).to_contain_text("1032.0")
    assert not page.problems, page.problems
