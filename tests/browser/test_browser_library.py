"""The prompt library in a real browser: save a prompt from a finished
generation, edit it into v2, diff v1 and v2, set the label "best", run v2
with a variable on another model, generate, and find the new image on the
version's page."""

import re

import pytest
from playwright.sync_api import expect

from playground.generations.models import Generation
from playground.library.models import Prompt

from tests import factories
from tests.browser.helpers import SHOTS, log_in, shot

pytestmark = pytest.mark.browser


def test_save_edit_diff_label_and_run_a_prompt(page, worker, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a paper boat on a pond", num_inference_steps=8,
                        image_resolution="2K")
    log_in(page)
    page.goto(gen.get_absolute_url())
    expect(page.locator(".full-images img")).to_have_count(1, timeout=20_000)  # the page reloads when done

    # Save it.
    page.get_by_test_id("save-prompt").click()
    expect(page.get_by_test_id("source-params")).to_contain_text("Seedream V4")
    expect(page.get_by_test_id("source-params")).to_contain_text("2K")
    page.get_by_label("Title").fill("Paper boat")
    page.get_by_label("Tags").fill("water, toys")
    page.get_by_role("button", name="Save prompt").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Paper boat")
    prompt = Prompt.objects.get()

    # Edit: a new version with a variable.
    page.get_by_label("Prompt").fill("a paper boat on a {place}")
    page.get_by_label("Message").fill("Any place")
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator(".messages")).to_contain_text("Saved version 2.")
    expect(page.get_by_test_id("versions").locator("tbody tr")).to_have_count(2)

    # Diff v1 and v2.
    page.get_by_role("button", name="Diff").click()
    diff = page.get_by_test_id("text-diff")
    expect(diff.locator("del")).to_have_text("pond")
    expect(diff.locator("ins")).to_have_text("{place}")
    shot(page, "library-diff")
    page.go_back()

    # Label v2 "best".
    page.get_by_label("Label").fill("best")
    page.get_by_label("Version", exact=True).select_option("2")
    page.get_by_role("button", name="Set label").click()
    expect(page.get_by_test_id("labels")).to_contain_text("best → v2")
    expect(page.get_by_test_id("label-moves")).to_contain_text("best set on v2 by alice")
    shot(page, "library-prompt")

    # Run v2 on Qwen with the variable filled.
    page.get_by_test_id("versions").get_by_role("link", name="v2").click()
    page.get_by_role("link", name="Run this version").click()
    page.get_by_label("Model").select_option("kie:qwen")
    page.get_by_label("place").fill("quiet canal")
    page.get_by_role("button", name="Open in the playground").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"KIE\.ai\s*→\s*Qwen"))
    expect(page.get_by_test_id("prefill-note")).to_contain_text("Running version 2 of Paper boat.")
    expect(page.get_by_test_id("prefill-note")).to_contain_text("left out: image_resolution")
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("a paper boat on a quiet canal")
    expect(page.get_by_label("Steps")).to_have_value("8")
    # (Not shot(): its hidden caret leaves a style attribute that htmx's settling would copy, against the CSP.)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "library-run-prefilled.png"), full_page=True, caret="initial")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#jobs article.job")).to_have_count(2)  # the new card on top of the first job's
    card = page.locator("#jobs article.job").first
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    v2 = prompt.versions.get(number=2)
    made = Generation.objects.get(prompt_version_uuid=v2.uuid)
    assert made.model == "qwen" and made.prompt == "a paper boat on a quiet canal"

    # The version page shows the run and its image.
    page.goto(v2.get_absolute_url())
    expect(page.get_by_test_id("stat-runs")).to_have_text("1")
    expect(page.get_by_test_id("stat-success")).to_contain_text("100%")
    strip = page.get_by_test_id("strip").locator(f'a[href="{made.get_absolute_url()}"] img')
    expect(strip).to_have_count(1)
    expect(strip).to_have_js_property("complete", True)
    shot(page, "library-version")
    assert not page.problems, page.problems


def test_save_to_library_from_the_playground_form(page, team, user):
    log_in(page)
    page.goto("/?provider=kie&model=seedream-v4")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a striped umbrella on a beach")
    page.get_by_label("Steps").fill("14")
    page.get_by_role("button", name="Save to library").click()  # inside the htmx form: sent there by HX-Redirect
    page.wait_for_url(re.compile(r"/library/new\?draft="))
    expect(page.get_by_label("Prompt")).to_have_value("a striped umbrella on a beach")
    expect(page.get_by_test_id("source-params")).to_contain_text("14")
    page.get_by_role("button", name="Save prompt").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("a striped umbrella on a beach")
    v = Prompt.objects.get().current
    assert (v.model, v.params["num_inference_steps"]) == ("seedream-v4", 14)
    assert not Generation.objects.exists()
    assert not page.problems, page.problems
