"""The job card and the detail page in a real browser, on a laptop
(1366x900) and a phone (390x844): the newest card stays in view when its
image arrives, the card offers the result's next steps, the detail page puts
the image first, and the credits page never scrolls sideways."""

import re
import time

import pytest
from playwright.sync_api import expect

from playground.generations.pipeline import create
from playground.generations.models import Generation

from tests.browser.helpers import log_in, shot  # noqa: F401
from tests.helpers import advance_clock

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])


def wait_finished(*gens, timeout=30.0):
    """Wait for the worker thread to finish jobs made outside the browser."""
    deadline = time.monotonic() + timeout
    for gen in gens:
        while True:
            gen.refresh_from_db()
            if not gen.is_active:
                break
            assert time.monotonic() < deadline, f"{gen} still {gen.status}"
            advance_clock()  # no waiting for polls or the sandbox's latency
            time.sleep(0.05)  # the worker thread's turn


def finished_jobs(team, user, n, model="seedream-v4", **params):
    gens = [create.create(team=team, owner=user, provider="kie", model=model,
                        params={"prompt": f"a quiet harbour, view {i}", **params}) for i in range(n)]
    wait_finished(*gens)
    return gens


def open_seedream(page):
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"KIE\.ai\s*→\s*Seedream V4"))


# --- the newest card stays in view -------------------------------------------------------


@SIZES
def test_the_newest_card_stays_in_view_when_its_image_arrives(page, worker, team, user, size):
    page.set_viewport_size(size)
    finished_jobs(team, user, 4, image_size="portrait_4_3")  # tall cards below the new one
    log_in(page)
    open_seedream(page)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a wooden bridge over a stream")
    page.get_by_label("Image size").select_option(label="Portrait 3:4")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#jobs article.job").first
    expect(card).to_contain_text("a wooden bridge over a stream")
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    thumb = card.locator(".thumbs img")
    expect(thumb).to_have_js_property("complete", True)
    # Let any layout shift and scroll adjustment happen.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    head = card.locator(".job-head").bounding_box()
    if size is LAPTOP:
        col = page.locator(".jobs-col").bounding_box()
        assert col["y"] - 1 <= head["y"] <= col["y"] + col["height"] - head["height"], (head, col)
    assert 0 <= head["y"] <= size["height"] - head["height"], head
    shot(page, f"cards-newest-in-view-{size['width']}", full_page=False)
    assert not page.problems, page.problems


# --- the card: a large result, Download and "Use as input" on it; a failed step ------------


def no_sideways_scroll(page):
    return page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")


@SIZES
def test_the_card_shows_a_large_result_with_download_and_use_as_input(page, worker, team, user, size):
    page.set_viewport_size(size)
    done, = finished_jobs(team, user, 1)
    failed = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                         params={"prompt": "a pear on a plate [402]"})
    wait_finished(failed)
    log_in(page)
    open_seedream(page)
    cards = page.locator("#jobs article.job")
    expect(cards).to_have_count(2)

    bad = page.locator(f"#job-{failed.uuid}")
    failed_step = bad.locator(".steps li.step-failed")
    expect(failed_step).to_have_count(1)
    expect(failed_step).to_have_text(re.compile(r"submitted\s*\(failed here\)"))  # also read out
    expect(failed_step).to_be_visible()
    expect(bad.locator(".steps li.step-done")).to_have_text(["queued"])

    card = page.locator(f"#job-{done.uuid}")
    img = card.locator("img.result-img")
    expect(img).to_have_js_property("complete", True)
    inner = card.evaluate("c => c.clientWidth - parseFloat(getComputedStyle(c).paddingLeft)"
                          " - parseFloat(getComputedStyle(c).paddingRight)")
    assert img.bounding_box()["width"] >= inner - 1, "the result does not fill the card"
    download = card.get_by_role("link", name="Download")
    expect(download).to_be_visible()
    with page.expect_download() as got:
        download.click()
    assert got.value.suggested_filename.endswith(".png")
    assert no_sideways_scroll(page)
    shot(page, f"cards-done-and-failed-{size['width']}")

    card.get_by_label("Model to use result 1 with").select_option(label="KIE.ai - Recraft upscale 2x")
    card.get_by_role("button", name="Use as input").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"KIE\.ai\s*→\s*Recraft upscale 2x"))
    picked = page.get_by_role("img", name="Picked input image")
    expect(picked).to_be_visible()
    expect(picked).to_have_js_property("complete", True)
    assert not page.problems, page.problems


# --- the detail page: image first, labelled parameters, then code ---------------------------


@SIZES
def test_the_detail_page_shows_the_image_first_then_labelled_parameters_then_code(page, worker, team, user, size):
    page.set_viewport_size(size)
    gen, = finished_jobs(team, user, 1, image_size="landscape_16_9", image_resolution="2K")
    log_in(page)
    page.goto(gen.get_absolute_url())
    img = page.locator("section.full-images img")
    expect(img).to_have_count(1)
    expect(img).to_have_js_property("complete", True)
    box = img.bounding_box()
    assert box["y"] < size["height"] and box["y"] + box["height"] <= size["height"], box  # the whole image, first screen
    assert box["width"] > 0.5 * size["width"] if size is PHONE else box["width"] > 600, box
    params = page.locator("dl.params")
    expect(params.locator("dt", has_text=re.compile("^Image size$"))).to_be_visible()
    expect(page.locator("dl.params dt:text-is('Image size') + dd")).to_have_text("Landscape 16:9")
    expect(page.locator("dl.params dt:text-is('Resolution') + dd")).to_have_text("2K")
    expect(params).not_to_contain_text("image_size")  # labels, not raw keys
    code = page.get_by_role("heading", name="Copy as code")
    assert box["y"] < params.bounding_box()["y"] < code.bounding_box()["y"]
    # No "Details" link to the page itself.
    expect(page.get_by_role("link", name="Details")).to_have_count(0)
    # A checkerboard behind the result: seen through a transparent image.
    assert "conic-gradient" in img.evaluate("i => getComputedStyle(i).backgroundImage")
    assert no_sideways_scroll(page)
    shot(page, f"detail-{size['width']}", full_page=False)
    assert not page.problems, page.problems


def test_a_detail_page_left_open_shows_the_image_first_when_the_job_finishes(page, worker, team, user):
    page.set_viewport_size(LAPTOP)
    log_in(page)
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                      params={"prompt": "a kettle on a stove [slow]"})
    page.goto(gen.get_absolute_url())
    expect(page.locator("article.job")).to_have_attribute("data-stamp", re.compile(r"^\d+$"))  # still running, polled
    img = page.locator("section.full-images img")
    expect(img).to_have_count(1, timeout=20_000)
    expect(img).to_have_js_property("complete", True)
    assert img.bounding_box()["y"] < 900
    expect(page.locator("article.job")).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_role("link", name="Details")).to_have_count(0)
    assert not page.problems, page.problems


# --- credits on a phone -------------------------------------------------------------------


@SIZES
def test_the_credits_page_never_scrolls_sideways_and_every_row_links_to_its_job(page, worker, team, user, size):
    from io import BytesIO

    from PIL import Image

    from playground.generations.models import InputImage

    page.set_viewport_size(size)
    long_prompt = "a" * 30 + " " + "windswept-coastline-with-lighthouse-and-gulls-" * 3
    first, = finished_jobs(team, user, 1)
    first.params["prompt"] = long_prompt  # what the ledger lists
    first.save(update_fields=["params"])
    buf = BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buf, "PNG")
    inp = InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())
    upscale = create.create(team=team, owner=user, provider="kie", model="recraft-upscale", params={"image": str(inp.uuid)})
    wait_finished(upscale)
    assert upscale.status == Generation.SUCCEEDED, upscale.error_message
    log_in(page)
    page.get_by_role("navigation").get_by_role("link", name="Credits").click()
    expect(page.get_by_role("heading", name="Entries")).to_be_visible()
    assert no_sideways_scroll(page), "the credits page scrolls sideways"
    # No figure is cut off inside a table's own scroll box either: every
    # cell of the per-model table lies within the screen.
    rights = page.locator("table.table td").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
    assert rights and max(rights) <= size["width"], f"a table cell ends at {max(rights)} px, past the screen"
    shot(page, f"credits-{size['width']}")
    no_prompt = page.get_by_role("link", name="Recraft upscale 2x (no prompt)").last  # in the entries (also in the costliest)
    expect(no_prompt).to_be_visible()
    no_prompt.click()
    expect(page).to_have_url(re.compile(re.escape(upscale.get_absolute_url()) + "$"))
    assert not page.problems, page.problems


# --- a transparent result: a checkerboard behind it -------------------------------------------


@SIZES
def test_a_transparent_result_shows_a_checkerboard_behind_it(page, worker, team, user, size):
    from io import BytesIO

    from PIL import Image, ImageDraw

    from playground.generations.models import InputImage

    page.set_viewport_size(size)
    source = Image.new("RGB", (256, 256), (30, 160, 60))  # a plain background, removed by the provider
    ImageDraw.Draw(source).rectangle((96, 96, 160, 160), fill=(200, 40, 40))
    buf = BytesIO()
    source.save(buf, "PNG")
    inp = InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())
    gen = create.create(team=team, owner=user, provider="kie", model="recraft-remove-background",
                      params={"image": str(inp.uuid)})
    wait_finished(gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    log_in(page)
    page.goto(gen.get_absolute_url())
    img = page.locator("section.full-images img")
    expect(img).to_have_js_property("complete", True)
    shown = Image.open(BytesIO(img.screenshot())).convert("RGB")
    w, h = shown.size
    corner = {shown.getpixel((x, y)) for x in range(0, w // 4) for y in range(0, h // 4)}
    assert (255, 255, 255) in corner and (217, 222, 228) in corner, "no checkerboard behind the transparent part"
    middle = shown.getpixel((w // 2, h // 2))
    assert abs(middle[0] - 200) < 20 and middle[1] < 80, middle  # the opaque subject hides it
    # The card in the playground shows it too.
    page.goto("/")
    thumb = page.locator(f"#job-{gen.uuid} img.result-img")
    expect(thumb).to_have_js_property("complete", True)
    shown = Image.open(BytesIO(thumb.screenshot())).convert("RGB")
    corner = {shown.getpixel((x, y)) for x in range(0, shown.size[0] // 4) for y in range(0, shown.size[1] // 4)}
    assert (255, 255, 255) in corner and (217, 222, 228) in corner
    shot(page, f"cards-transparent-{size['width']}", full_page=False)
    assert not page.problems, page.problems
