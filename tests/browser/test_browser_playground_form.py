"""The playground form in a real browser, on a laptop (1366x900) and a phone
(390x844): the live estimate (what is charged, only the priced fields on the
wire), the first error brought into view, the model picker folded on
phones, Ctrl+Enter, drafts kept over a reload, and jobs from another tab."""

from decimal import Decimal
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger.models import Entry

from tests.browser.helpers import log_in, shot  # noqa: F401

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def open_model(page, provider, model):
    page.goto("/")
    picker = page.locator("aside.picker section", has=page.get_by_role("heading", name=provider, exact=True))
    picker.get_by_role("link", name=re.compile("^" + re.escape(model))).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(re.escape(provider) + r"\s*→\s*" + re.escape(model)))


def prompt_box(page):
    return page.get_by_role("textbox", name="Prompt", exact=True)


def watch_estimates(page) -> list[str]:
    """Every estimate request URL the page sends, from now on."""
    seen = []
    page.on("request", lambda r: "/estimate/" in r.url and seen.append(r.url))
    return seen


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def finished_card(page):
    card = page.locator("#jobs article.job").first
    expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
    return card


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_flux_kontext_max_shows_the_12_credits_it_is_charged_and_the_request_carries_only_priced_fields(
        page, worker, team, viewport):
    page.set_viewport_size(viewport)
    log_in(page)
    page.goto("/?provider=kie&model=flux-kontext")
    requests = watch_estimates(page)
    expect(page.get_by_test_id("estimate-cost")).to_have_text("8 KIE credits")
    prompt_box(page).fill("a paper lantern floating over a quiet river")
    page.locator("#id_model").select_option("flux-kontext-max")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("12 KIE credits")
    page.get_by_label("Aspect ratio").select_option("1:1")
    prompt_box(page).press("End")
    page.keyboard.type(", at night")
    page.wait_for_timeout(600)  # the estimate's own 400 ms debounce: any request typing would cause has gone out
    assert requests, "no estimate request was sent"
    for url in requests:
        parts = urlsplit(url)
        assert parts.path == "/estimate/kie/flux-kontext", url
        assert set(parse_qs(parts.query)) == {"model"}, url  # no prompt, no CSRF token, no submit token
    assert not page.problems, page.problems

    page.get_by_role("button", name="Generate").click()
    card = finished_card(page)
    expect(card).to_contain_text("12 KIE credits")
    gen = Generation.objects.get()
    assert gen.params["model"] == "flux-kontext-max"
    assert Entry.objects.get(generation=gen, kind=Entry.CAPTURE).amount == 12
    shot(page, f"flux-kontext-max-{viewport['width']}")


def test_nano_banana_and_kawai_estimates_follow_the_form_without_errors(page, worker, team):
    page.set_viewport_size(LAPTOP)
    log_in(page)
    page.goto("/?provider=kie&model=nano-banana")
    requests = watch_estimates(page)
    expect(page.get_by_test_id("estimate-cost")).to_have_text("4 KIE credits")
    page.locator("#id_model").select_option("google/nano-banana-edit")
    page.locator("#id_model").select_option("google/nano-banana")
    page.get_by_label("Width (px)").fill("512")
    prompt_box(page).fill("a bowl of cherries")
    page.get_by_role("button", name="Generate").click()
    expect(finished_card(page)).to_contain_text("4 KIE credits")
    assert requests == []  # a flat price: nothing to ask while the form is filled in
    assert Entry.objects.get(kind=Entry.CAPTURE).amount == 4

    page.goto("/?provider=kawai&model=generations")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("$0.04")
    prompt_box(page).fill("a bowl of cherries")
    page.get_by_label("Images").fill("2")
    page.get_by_label("Quality").select_option("hd")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("$0.16")
    page.locator("#id_model").fill("kawai-pro")
    page.locator("#id_model").blur()
    page.wait_for_timeout(600)
    expect(page.get_by_test_id("estimate-cost")).to_have_text("$0.16")
    assert requests and all(urlsplit(u).path == "/estimate/kawai/generations" for u in requests)
    assert all("prompt" not in parse_qs(urlsplit(u).query) for u in requests)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#jobs article.job")).to_have_count(2)
    expect(finished_card(page)).to_contain_text("$0.16")
    gen = Generation.objects.get(provider="kawai")
    assert Entry.objects.get(generation=gen, kind=Entry.CAPTURE).amount == gen.cost_estimate == Decimal("0.16")
    assert not page.problems, page.problems


def test_on_a_phone_the_prompt_is_on_the_first_screen_and_change_opens_the_models(page, team):
    page.set_viewport_size(PHONE)
    log_in(page)
    page.goto("/?provider=kie&model=seedream-v4")
    switch = page.locator("details.model-switch summary")
    expect(switch).to_contain_text("Model: KIE.ai → Seedream V4")
    expect(switch).to_contain_text("Change")
    expect(page.locator("aside.picker")).to_be_hidden()
    assert in_viewport(page, prompt_box(page)), prompt_box(page).bounding_box()
    assert page.evaluate("window.scrollY") == 0
    shot(page, "phone-first-screen", full_page=False)
    switch.click()
    picker = page.locator("aside.picker")
    expect(picker).to_be_visible()
    picker.get_by_role("link", name="Qwen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"KIE\.ai\s*→\s*Qwen"))
    expect(page.locator("aside.picker")).to_be_hidden()  # folded again on the new model

    page.set_viewport_size(LAPTOP)  # the laptop layout is as before: the list, no switch line
    expect(page.locator("aside.picker")).to_be_visible()
    expect(page.locator("details.model-switch")).to_be_hidden()


def test_on_a_phone_an_invalid_submit_brings_the_first_error_into_view_and_focus(page, team):
    page.set_viewport_size(PHONE)
    log_in(page)
    page.goto("/?provider=kie&model=midjourney")  # a long form: the button is far below the prompt
    page.get_by_label("Weirdness").fill("5000")
    button = page.get_by_role("button", name="Generate")
    button.scroll_into_view_if_needed()
    assert not in_viewport(page, prompt_box(page))
    button.click()
    error = page.locator(".field.has-error").first
    expect(error).to_contain_text("This field is required.")
    expect(prompt_box(page)).to_be_focused()
    page.wait_for_timeout(100)  # let the scroll land
    assert in_viewport(page, prompt_box(page)), prompt_box(page).bounding_box()
    shot(page, "phone-invalid-submit", full_page=False)
    assert Generation.objects.count() == 0


def test_ctrl_enter_submits_and_a_reload_keeps_the_form_being_written(page, worker, team):
    page.set_viewport_size(LAPTOP)
    log_in(page)
    page.goto("/?provider=kie&model=flux-kontext")
    prompt_box(page).fill("a sailing boat on a calm sea")
    expect(page.locator("#id_prompt-count")).to_contain_text("4,972 of 5,000 characters left")
    page.locator("#id_model").select_option("flux-kontext-max")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("12 KIE credits")
    page.reload()
    expect(prompt_box(page)).to_have_value("a sailing boat on a calm sea")
    expect(page.locator("#id_model")).to_have_value("flux-kontext-max")
    expect(page.get_by_test_id("estimate-cost")).to_have_text("12 KIE credits")  # follows what came back
    expect(page.locator("#jobs article.job")).to_have_count(0)

    prompt_box(page).press("Control+Enter")
    expect(page.locator("#jobs article.job")).to_have_count(1)
    finished_card(page)
    gen = Generation.objects.get()
    assert (gen.prompt, gen.params["model"]) == ("a sailing boat on a calm sea", "flux-kontext-max")
    page.reload()  # submitted: the draft is done
    expect(prompt_box(page)).to_have_value("")
    expect(page.locator("#id_model")).to_have_value("flux-kontext-pro")
    assert not page.problems, page.problems


def test_a_job_started_in_another_tab_appears_in_the_job_column(page, team, user):
    page.set_viewport_size(LAPTOP)
    log_in(page)
    page.clock.install()  # the page's timers, moved on below instead of waited for
    page.goto("/?provider=kie&model=seedream-v4")
    mine = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a tin robot"})
    page.reload()
    expect(page.locator("#jobs article.job")).to_have_count(1)
    elsewhere = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                            params={"prompt": "a green kite"})
    card = page.locator(f"#job-{elsewhere.uuid}")
    expect(card).to_have_count(0)
    page.clock.run_for(5_000)  # one poll is every 5 s
    expect(card).to_be_visible()
    expect(page.locator("#jobs article.job")).to_have_count(2)
    expect(page.locator("#jobs article.job").first).to_have_id(f"job-{elsewhere.uuid}")
    expect(card).to_contain_text("a green kite")
    expect(page.locator(f"#job-{mine.uuid}")).to_have_count(1)
    assert not page.problems, page.problems
