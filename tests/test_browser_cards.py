"""The job card and the detail page in a real browser, on a laptop
(1366x900) and a phone (390x844): the newest card stays in view when its
image arrives, the card offers the result's next steps, the detail page puts
the image first, and the credits page never scrolls sideways."""

import re
import time

import pytest
from browser import app, browser, log_in, page, shot, worker  # noqa: F401
from playwright.sync_api import expect

from playground.core import jobs
from playground.core.models import Generation

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
            time.sleep(0.1)


def finished_jobs(team, user, n, model="seedream-v4", **params):
    gens = [jobs.create(team=team, owner=user, provider="kie", model=model,
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
