"""The team gallery in a real browser, with two people: bob shares one of
his images; alice finds it in the team scope under bob's name, filters,
scrolls to load older cards, walks through them in the lightbox (the one the
compare grid uses too: a modal <dialog>) with the arrow keys, and stars one."""

from datetime import timedelta

from django.utils import timezone
import pytest
from playwright.sync_api import expect

from playground.generations.models import Favorite, Generation

from tests import factories
from tests.browser.helpers import log_in, shot
from tests.generations.test_gallery import finished

pytestmark = pytest.mark.browser


def within(box, viewport) -> bool:
    """Whether an element's box is wholly on the screen."""
    return (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0
            and box["x"] + box["width"] <= viewport["width"] and box["y"] + box["height"] <= viewport["height"])


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_two_teammates_share_filter_scroll_and_browse_the_lightbox(page, browser, app, team, user, viewport):
    bob = factories.user("bob")
    team.memberships.create(user=bob, role="member")
    start = timezone.now() - timedelta(days=1)
    # Alice's own: more than one page (24) of them, older than bob's.
    for i in range(30):
        finished(team, user, f"alice's study of a pebble number {i}", at=start + timedelta(minutes=i))
    bobs = finished(team, bob, "a paper crane on a windowsill", visibility=Generation.PRIVATE,
                    at=start + timedelta(hours=2))

    # Bob shares his image from his gallery.
    other = browser.new_context(base_url=app.url, viewport=viewport)
    bob_page = other.new_page()
    log_in(bob_page, "bob", "pw-bob-123")
    bob_page.goto("/generations/")
    card = bob_page.locator(f"#gen-{bobs.uuid}")
    expect(card).to_contain_text("private")
    card.get_by_role("button", name="Share").click()
    expect(card.get_by_role("button", name="Unshare")).to_be_visible()
    other.close()
    bobs.refresh_from_db()
    assert bobs.visibility == Generation.SHARED

    page.set_viewport_size(viewport)
    log_in(page)
    page.goto("/generations/?scope=team")
    expect(page.get_by_role("heading", name="Team gallery")).to_be_visible()
    first = page.get_by_test_id("card").first
    expect(first).to_have_id(f"gen-{bobs.uuid}")
    expect(first.get_by_test_id("owner")).to_have_text("bob")
    expect(first.get_by_test_id("model")).to_have_text("KIE.ai · Seedream V4")
    # (decode() waits for the image to arrive and rejects a broken one)
    assert first.locator("img").evaluate("img => img.decode().then(() => img.naturalWidth > 0)")
    shot(page, f"gallery-team-{viewport['width']}")

    # Filters: text search, then a member.
    page.get_by_label("Search prompts").fill("crane")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("card")).to_have_count(1)
    assert "q=crane" in page.url
    page.get_by_label("Member").select_option("alice")
    page.get_by_label("Search prompts").fill("")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("card")).to_have_count(24)
    expect(page.locator(f"#gen-{bobs.uuid}")).to_have_count(0)

    # Scrolling to the end loads the older cards (htmx, revealed).
    page.goto("/generations/?scope=team")
    expect(page.get_by_test_id("card")).to_have_count(24)
    page.get_by_test_id("more").scroll_into_view_if_needed()
    expect(page.get_by_test_id("card")).to_have_count(31)
    expect(page.get_by_test_id("more")).to_have_count(0)

    # The lightbox: open on the first card, arrows move, Esc closes.
    box = page.get_by_test_id("lightbox")
    page.get_by_test_id("card").first.locator("a.thumb").click()
    expect(box).to_be_visible()
    assert box.evaluate("d => d.tagName === 'DIALOG' && d.matches(':modal')")
    caption = box.locator(".lb-caption")
    expect(caption).to_have_text("a paper crane on a windowsill")
    expect(box.locator(".lb-meta")).to_contain_text("KIE.ai · Seedream V4 · by bob · ")
    expect(box.locator(".lb-meta")).to_contain_text("KIE credit")
    expect(box.locator(".lb-detail")).to_have_attribute("href", bobs.get_absolute_url())
    expect(box.locator(".lb-pos")).to_have_text("1 of 31")  # all loaded by the scroll above
    expect(box.locator(".lb-close")).to_be_focused()
    expect(box.get_by_role("button", name="Previous")).to_be_disabled()  # the first: nowhere back to go
    page.keyboard.press("ArrowLeft")
    expect(caption).to_have_text("a paper crane on a windowsill")
    page.keyboard.press("ArrowRight")
    expect(caption).to_have_text("alice's study of a pebble number 29")
    page.keyboard.press("ArrowRight")
    expect(caption).to_have_text("alice's study of a pebble number 28")
    page.keyboard.press("ArrowLeft")
    expect(caption).to_have_text("alice's study of a pebble number 29")
    shown = Generation.objects.get(params__prompt="alice's study of a pebble number 29").images.get()
    img = box.locator(".lb-img")
    expect(img).to_have_attribute("src", shown.get_absolute_url())  # the full image
    expect(img).to_have_js_property("complete", True)
    assert within(img.bounding_box(), viewport), img.bounding_box()
    for name in ("Close", "Previous", "Next"):
        assert within(box.get_by_role("button", name=name).bounding_box(), viewport), name
    shot(page, f"gallery-lightbox-{viewport['width']}", full_page=False)
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    expect(page.get_by_test_id("card").first.locator("a.thumb")).to_be_focused()

    # At the last loaded card, the right arrow loads the older ones and goes on.
    page.goto("/generations/?scope=team")
    page.get_by_test_id("card").nth(23).locator("a.thumb").click()
    expect(caption).to_have_text("alice's study of a pebble number 7")
    page.keyboard.press("ArrowRight")
    expect(caption).to_have_text("alice's study of a pebble number 6")
    expect(page.get_by_test_id("card")).to_have_count(31)
    expect(box.locator(".lb-pos")).to_have_text("25 of 31")
    page.get_by_role("button", name="Close").click()
    expect(box).to_be_hidden()

    # The star, on bob's shared card.
    star = page.locator(f"#gen-{bobs.uuid}").get_by_test_id("star")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(page.locator(f"#gen-{bobs.uuid}").get_by_test_id("star")).to_have_attribute("aria-pressed", "true")
    assert Favorite.objects.filter(user=user, generation=bobs).exists()
    page.goto("/generations/?scope=team&favorites=1")
    expect(page.get_by_test_id("card")).to_have_count(1)
    assert not page.problems, page.problems


def bobs_adult_result_in_the_team_gallery(page, team):
    """A teammate's adult result, and the team gallery open (as alice) on it."""
    bob = factories.user("bob")
    team.memberships.create(user=bob, role="member")
    gen = finished(team, bob, "a figure drawing", is_adult=True)
    log_in(page)
    page.goto("/generations/?scope=team")
    return gen


def test_someone_elses_adult_card_is_blurred_until_revealed(page, team, user):
    gen = bobs_adult_result_in_the_team_gallery(page, team)
    img = page.locator(f"#gen-{gen.uuid} img")
    assert img.evaluate("img => getComputedStyle(img).filter").startswith("blur")
    page.locator(f"#gen-{gen.uuid}").get_by_test_id("reveal").click()
    expect(img).to_have_css("filter", "none")
    assert not page.problems, page.problems


def test_the_lightbox_blurs_an_adult_image_until_revealed_there(page, team, user):
    gen = bobs_adult_result_in_the_team_gallery(page, team)
    thumb = page.locator(f"#gen-{gen.uuid} a.thumb")
    thumb.click(position={"x": 10, "y": thumb.bounding_box()["height"] - 10})  # beside the card's own Reveal
    box = page.get_by_test_id("lightbox")
    img = box.locator(".lb-img")
    expect(img).to_have_css("filter", "blur(18px)")
    box.get_by_role("button", name="Reveal").click()
    expect(img).to_have_css("filter", "none")
    expect(box.get_by_role("button", name="Reveal")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(page.locator(f"#gen-{gen.uuid} img")).to_have_css("filter", "none")  # its card is revealed too
    assert not page.problems, page.problems
