"""One real-browser story per kind of provider: synchronous (Kwiki AI, with
its team-gated adult style), asynchronous (kvid.ai, several images), an
OpenAI-compatible edit of an uploaded image chained into variations
(Kawai), and a rate-limit wait the user can see on the card (KIE.ai)."""

import re
import uuid

import pytest
from PIL import Image
from playwright.sync_api import expect

from playground.generations.models import Generation

from tests.browser.helpers import log_in, shot  # noqa: F401
from tests.helpers import advance_clock, start_sandbox, use_sandbox

pytestmark = pytest.mark.browser

# Records every "status: stage | note" the newest job card shows, as htmx swaps it.
WATCH_JOB_CARD = """() => {
  window.jobCardStates = [];
  const record = () => {
    const card = document.querySelector('#jobs article.job');
    if (!card) return;
    const note = card.querySelector('[data-testid=note]');
    const state = card.dataset.status + ': ' + card.querySelector('[data-testid=stage]').textContent.trim()
      + (note ? ' | ' + note.textContent.trim() : '');
    if (window.jobCardStates.at(-1) !== state) window.jobCardStates.push(state);
  };
  new MutationObserver(record).observe(document.getElementById('jobs'),
    {childList: true, subtree: true, attributes: true, characterData: true});
}"""


# Fetches the newest card alone (its page's htmx partial) every 150 ms and
# records what the card would show: the page polls only every second,
# which can fall either side of a one-second wait.
POLL_JOB_CARD = """() => {
  window.cardFetchStates = [];
  const url = '/g/' + document.querySelector('#jobs article.job').id.slice(4) + '/?poll=1';  // the card alone
  const tick = async () => {
    const html = await (await fetch(url, {headers: {'HX-Request': 'true'}})).text();
    const got = new DOMParser().parseFromString(html, 'text/html').querySelector('article.job');
    const note = got.querySelector('[data-testid=note]');
    const state = got.dataset.status + ': ' + got.querySelector('[data-testid=stage]').textContent.trim()
      + (note ? ' | ' + note.textContent.trim() : '');
    if (window.cardFetchStates.at(-1) !== state) window.cardFetchStates.push(state);
    if (['queued', 'submitting', 'running'].includes(got.dataset.status)) setTimeout(tick, 150);
  };
  tick();
}"""


def open_model(page, provider, model):
    page.goto("/")
    picker = page.locator("aside.picker section", has=page.get_by_role("heading", name=provider, exact=True))
    # A model that takes an input image has an "img" badge after its name.
    picker.get_by_role("link", name=re.compile("^" + re.escape(model))).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(re.escape(provider) + r"\s*→\s*" + re.escape(model)))


def prompt_box(page):
    return page.get_by_role("textbox", name="Prompt", exact=True)


def states(page) -> list[str]:
    return page.evaluate("window.jobCardStates")


def expect_done_with_images(card, count):
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(card.get_by_test_id("stage")).to_have_text("done")
    thumbs = card.locator(".thumbs img")
    expect(thumbs).to_have_count(count)
    for i in range(count):
        expect(thumbs.nth(i)).to_have_js_property("complete", True)
        assert thumbs.nth(i).evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, f"thumbnail {i + 1} did not load"


def style_options(page) -> list[str]:
    return page.get_by_label("Style", exact=True).locator("option").evaluate_all("os => os.map(o => o.value)")


# --- synchronous: Kwiki AI ---------------------------------------------------------------


def test_it_generates_with_a_sync_provider_and_offers_the_adult_style_only_when_the_team_allows_it(
        page, worker, team):
    log_in(page)
    open_model(page, "Kwiki AI", "Text to image")
    assert "nude" not in style_options(page), "adult style offered while the team has adult content off"
    assert style_options(page) == ["realistic", "anime"]
    expect(page.get_by_label("Age", exact=True)).to_be_hidden()  # adult-only fields are not shown either

    prompt_box(page).fill("a teapot on a wooden table, morning light")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("1 Kwiki credit")
    page.get_by_label("Quality").select_option("hires")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("2 Kwiki credits")  # follows the choice
    page.evaluate(WATCH_JOB_CARD)
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    expect_done_with_images(card, 1)
    expect(card).to_contain_text("2 Kwiki credits")  # high resolution costs 2
    seen = states(page)
    assert seen[0] == "queued: queued" and seen[-1] == "succeeded: done", seen
    shot(page, "kwiki-done")
    gen = Generation.objects.get()
    assert (gen.provider, gen.model, gen.status) == ("kwiki", "generate", "succeeded")
    assert gen.params["quality"] == "hires" and gen.params["style"] == "realistic"

    # The owner turns adult styles on for the team.
    page.get_by_role("navigation").get_by_role("link", name="Team").click()
    page.get_by_label("Allow adult styles").check()
    page.locator("form", has=page.get_by_label("Allow adult styles")).get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Adult styles are now offered")
    team.refresh_from_db()
    assert team.adult_content_enabled

    open_model(page, "Kwiki AI", "Text to image")
    assert "nude" in style_options(page)
    expect(page.get_by_label("Age", exact=True)).to_be_hidden()  # until the adult style is chosen
    page.get_by_label("Style", exact=True).select_option("nude")
    for label in ("Gender", "Age", "Hair color", "Random caption"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
        expect(page.get_by_label(label, exact=True)).to_be_enabled()
    prompt_box(page).fill("a portrait photo in a sunny park")
    page.get_by_label("Age", exact=True).fill("17")
    page.get_by_role("button", name="Generate").click()
    error = page.locator(".field[data-param=age] .field-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(re.compile(r"greater than or equal to 18|18"))
    # The replaced form still shows the adult fields (the style stays chosen).
    expect(page.get_by_label("Style", exact=True)).to_have_value("nude")
    expect(page.get_by_label("Age", exact=True)).to_be_visible()
    expect(page.get_by_label("Age", exact=True)).to_have_value("17")
    expect(page.locator("#jobs article.job")).to_have_count(1)  # only the first job
    shot(page, "kwiki-adult-age-17-error")
    assert Generation.objects.count() == 1
    assert not page.problems, page.problems


def test_it_hides_the_fields_that_do_not_apply(page, team):
    """data-show-if fields are hidden by app.js (the hidden attribute), not
    just disabled: a user must not face greyed-out adult appearance fields
    (or an unused aspect ratio) they cannot fill."""
    log_in(page)
    open_model(page, "Kwiki AI", "Text to image")
    for label in ("Gender", "Age", "Hair color", "Breast size", "Caption text"):
        expect(page.get_by_label(label, exact=True)).to_be_hidden()
    open_model(page, "kvid.ai", "Nano Banana: text to image")
    expect(page.get_by_label("Width")).to_be_hidden()
    page.get_by_label("Size", exact=True).select_option("custom")
    expect(page.get_by_label("Width")).to_be_visible()
    expect(page.get_by_label("Aspect ratio")).to_be_hidden()


# --- asynchronous: kvid.ai ----------------------------------------------------------------


@pytest.fixture
def slow_sandbox(tmp_path, settings, sandbox):
    """A private sandbox whose async jobs take 4 s, so the card's 1 s polling
    shows the steps between queued and done."""
    sb = start_sandbox(tmp_path, latency=4.0)
    use_sandbox(settings, sb)
    yield sb
    sb.stop()


def test_it_follows_an_async_job_through_its_stages_and_shows_every_image(page, worker, team, slow_sandbox):
    log_in(page)
    open_model(page, "kvid.ai", "Nano Banana: text to image")
    prompt_box(page).fill("a paper boat on a calm lake")
    page.get_by_label("Size", exact=True).select_option("custom")
    expect(page.get_by_label("Aspect ratio")).to_be_hidden()
    expect(page.get_by_label("Width")).to_be_visible()
    page.get_by_label("Width").fill("768")
    page.get_by_label("Height").fill("512")
    page.get_by_label("Images", exact=True).fill("2")
    page.evaluate(WATCH_JOB_CARD)
    page.get_by_role("button", name="Generate").click()

    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "running")
    slow_sandbox.started_earlier(2.0)  # half-way through its 4 s: the provider is processing
    expect(card.get_by_test_id("stage")).to_have_text("generating")
    advance_clock()  # ...and done: no waiting for the rest
    expect_done_with_images(card, 2)
    seen = states(page)
    order = ["queued", "submitting", "running", "succeeded"]
    statuses = [s.split(":")[0] for s in seen]
    assert seen[0] == "queued: queued" and seen[-1] == "succeeded: done", seen
    assert statuses == sorted(statuses, key=order.index), f"stages went backwards: {seen}"
    # the provider's "processing" is shown while it lasts, with kvid's own estimate ("4s")
    assert "running: generating | the provider estimates 4 s" in seen, seen
    thumbs = card.locator(".thumbs img")
    assert thumbs.nth(0).get_attribute("src") != thumbs.nth(1).get_attribute("src")
    shot(page, "kvid-two-images")

    gen = Generation.objects.get()
    assert gen.params["num_images"] == 2
    assert [(i.width, i.height) for i in gen.images.order_by("index")] == [(768, 512), (768, 512)]
    card.get_by_role("link", name="Details").click()
    full = page.locator("section.full-images img")
    expect(full).to_have_count(2)
    for i in range(2):
        expect(full.nth(i)).to_have_js_property("complete", True)
        assert full.nth(i).evaluate("img => img.decode().then(() => img.naturalWidth)") == 768
    shot(page, "kvid-detail")
    assert not page.problems, page.problems


# --- OpenAI-compatible: Kawai edit, then variations ----------------------------------------


def test_it_edits_an_uploaded_image_and_sends_the_result_on_to_variations(page, worker, team, tmp_path):
    upload = tmp_path / "blue-square.png"
    Image.new("RGB", (256, 256), (40, 90, 200)).save(upload)

    log_in(page)
    open_model(page, "Kawai", "Edit")
    page.get_by_label(re.compile(r"^Image\b(?!s)")).set_input_files(upload)
    prompt_box(page).fill("add a small yellow sun in the corner")
    page.get_by_label("Size", exact=True).fill("256x256")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    expect_done_with_images(card, 1)
    shot(page, "kawai-edit-done")
    edit = Generation.objects.get()
    assert (edit.provider, edit.model) == ("kawai", "edits")

    card.get_by_role("link", name="Details").click()
    expect(page.get_by_role("img", name="Input image")).to_be_visible()  # the upload is shown as the input
    page.get_by_label("Next step with this image").select_option(label="Kawai - Variations")
    page.get_by_role("button", name="Use as input").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Kawai\s*→\s*Variations"))
    picked = page.get_by_role("img", name="Picked input image")
    expect(picked).to_be_visible()
    expect(picked).to_have_js_property("complete", True)
    expect(page.get_by_text("This image is used.")).to_be_visible()
    page.get_by_label("Size", exact=True).fill("256x256")
    page.get_by_role("button", name="Generate").click()
    newest = page.locator("#jobs article.job").first
    expect(page.locator("#jobs article.job")).to_have_count(2)
    expect(newest).to_contain_text("Variations")
    expect_done_with_images(newest, 1)
    shot(page, "kawai-variations-done")

    variation = Generation.objects.exclude(pk=edit.pk).get()
    assert (variation.provider, variation.model, variation.status) == ("kawai", "variations", "succeeded")
    newest.get_by_role("link", name="Details").click()
    made_from = page.locator("dl.params dt", has_text="Made from")
    expect(made_from).to_be_visible()
    link = page.locator("dl.params dt:has-text('Made from') + dd a")
    expect(link).to_have_text(re.compile("Edit result"))
    expect(link).to_have_attribute("href", edit.get_absolute_url())
    shot(page, "kawai-variations-detail")
    assert not page.problems, page.problems


# --- a rate-limit wait on the card: KIE.ai -------------------------------------------------


def test_it_shows_a_rate_limit_wait_on_the_card_then_finishes(page, worker, team):
    log_in(page)
    open_model(page, "KIE.ai", "Seedream V4")
    # The sandbox answers 429 once per prompt and key: make the prompt unique.
    prompt_box(page).fill(f"a windmill by a tulip field {uuid.uuid4().hex[:6]} [429-once]")
    page.evaluate(WATCH_JOB_CARD)
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job")
    expect(card).to_have_count(1)
    page.evaluate(POLL_JOB_CARD)
    expect(card.get_by_test_id("note")).to_have_text(re.compile(r"waiting for rate limit, retrying in \d+ s"))
    advance_clock()  # the provider's Retry-After (3 s) has passed: no waiting for it
    expect_done_with_images(card, 1)
    page.wait_for_function("window.cardFetchStates.at(-1) === 'succeeded: done'")
    shown, fetched = states(page), page.evaluate("window.cardFetchStates")
    wait = re.compile(r"queued: waiting \| waiting for rate limit, retrying in \d+ s")
    assert any(wait.fullmatch(s) for s in shown + fetched), \
        f"the rate-limit wait never showed on the card: shown {shown}, fetched {fetched}"
    assert shown[0] == "queued: queued" and shown[-1] == "succeeded: done", shown
    expect(card.get_by_test_id("note")).to_have_count(0)  # no stale note once done
    shot(page, "kie-after-rate-limit")
    gen = Generation.objects.get()
    assert gen.status == "succeeded"
    assert not page.problems, page.problems
