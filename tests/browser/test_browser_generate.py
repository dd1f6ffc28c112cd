"""The foundation user story in a real browser: log in, pick a model, fill
the form, watch the job finish, find the image in the gallery."""

import re

import pytest
from playwright.sync_api import expect

from playground.generations.models import Generation

from tests.browser.helpers import log_in, shot  # noqa: F401

pytestmark = pytest.mark.browser


# Records every (status: stage badge) the first job card shows, as htmx swaps it.
WATCH_JOB_CARD = """() => {
  window.jobCardStates = [];
  new MutationObserver(() => {
    const card = document.querySelector('#jobs article.job');
    if (!card) return;
    const state = card.dataset.status + ': ' + card.querySelector('[data-testid=stage]').textContent.trim();
    if (window.jobCardStates.at(-1) !== state) window.jobCardStates.push(state);
  }).observe(document.getElementById('jobs'), {childList: true, subtree: true, attributes: true, characterData: true});
}"""


def open_seedream(page):
    page.goto("/")
    picker = page.locator("aside.picker section", has=page.get_by_role("heading", name="KIE.ai"))
    picker.get_by_role("link", name="Seedream V4").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"KIE\.ai\s*→\s*Seedream V4"))


def test_it_generates_an_image_and_shows_it_in_the_card_and_the_gallery(page, worker, team):
    log_in(page)
    open_seedream(page)

    page.get_by_label("Prompt").fill("a lighthouse on a rocky coast at dusk")
    page.get_by_label("Image size").select_option(label="Landscape 16:9")
    page.get_by_label("Resolution").select_option("1K")
    page.get_by_label("Steps").fill("20")
    page.get_by_label("Seed").fill("7")
    page.evaluate(WATCH_JOB_CARD)
    page.get_by_role("button", name="Generate").click()

    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)  # swapped by htmx polling
    expect(card.get_by_test_id("stage")).to_have_text("done")
    seen = page.evaluate("window.jobCardStates")
    assert seen[0] == "queued: queued", seen  # the card shows up at once, before any work
    assert seen[-1] == "succeeded: done", seen
    assert all(s.split(":")[0] in ("queued", "submitting", "running", "succeeded") for s in seen), seen
    expect(card).to_contain_text("a lighthouse on a rocky coast at dusk")
    thumb = card.locator(".thumbs img")
    expect(thumb).to_have_count(1)
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, "the thumbnail did not load"
    # The form keeps what was typed, ready for the next variation.
    expect(page.get_by_label("Prompt")).to_have_value("a lighthouse on a rocky coast at dusk")
    shot(page, "playground-after-success")

    gen = Generation.objects.get()
    assert gen.params == {"prompt": "a lighthouse on a rocky coast at dusk", "image_size": "landscape_16_9",
                          "image_resolution": "1K", "num_inference_steps": 20, "seed": 7}

    page.get_by_role("navigation").get_by_role("link", name="Gallery").click()
    expect(page.get_by_role("heading", name="My generations")).to_be_visible()
    tile = page.locator("ul.gallery li")
    expect(tile).to_have_count(1)
    tile_img = tile.locator("img")
    expect(tile_img).to_have_js_property("complete", True)
    assert tile_img.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, "the gallery thumbnail did not load"
    shot(page, "gallery")

    with page.context.expect_page() as new_tab:
        tile.get_by_role("link", name="Full size").click()
    full = new_tab.value
    full.wait_for_load_state()
    size = full.evaluate("() => { const i = document.querySelector('img'); return [i.naturalWidth, i.naturalHeight] }")
    assert size == [1024, 576]
    response = page.request.get(tile.get_by_role("link", name="Full size").get_attribute("href"))
    assert response.ok and response.headers["content-type"].startswith("image/")
    assert not page.problems, page.problems


def submit_with_too_many_steps(page):
    log_in(page)
    open_seedream(page)
    page.get_by_label("Prompt").fill("a red fox in fresh snow")
    page.get_by_label("Steps").fill("99")
    page.get_by_role("button", name="Generate").click()
    error = page.locator(".field[data-param=num_inference_steps] .field-error")
    expect(error).to_have_text(re.compile("less than or equal to 50"))
    expect(error).to_be_visible()


def test_it_shows_a_validation_error_next_to_the_field_and_creates_no_job(page, worker, team):
    submit_with_too_many_steps(page)
    expect(page.get_by_label("Prompt").first).to_have_value("a red fox in fresh snow")  # nothing typed is lost
    expect(page.locator("#jobs article.job")).to_have_count(0)
    shot(page, "playground-validation-error")
    assert Generation.objects.count() == 0
    assert not page.problems, page.problems


def test_it_replaces_the_form_with_the_invalid_one_instead_of_nesting_it(page, worker, team):
    submit_with_too_many_steps(page)
    expect(page.locator("#model-form")).to_have_count(1, timeout=1000)  # the swap is already done
