"""The page's one job poll in a real browser (htmx: #job-poll, every 1s): a
playground with several running jobs makes one polling request per second
(not one per card), a changed card is swapped in, the poll stops once no card
is active (286) and starts again with a job started from the form, a finished
job reloads its detail page and stops the polling there, a job started in
another tab appears, and a rate-limit countdown ticks with no request for it."""

from datetime import timedelta
import re
import time

from django.utils import timezone
import pytest
from playwright.sync_api import expect

from playground.generations import states
from playground.generations.models import Generation

from tests.browser.helpers import log_in

pytestmark = pytest.mark.browser


def running(team, user, n, **fields):
    """Jobs the provider is working on (no worker here: they stay as they are until the test moves them)."""
    return [Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                      params={"prompt": f"a quiet harbour, view {i}"}, status=Generation.RUNNING,
                                      phase="generating", provider_job_id=f"poll-{i}", **fields) for i in range(n)]


def count_polls(page):
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    return seen


def polls(seen):
    return [u for u in seen if "/jobs/poll" in u or "poll=1" in u or "/jobs/new" in u]


def assert_no_more_polls(page, seen):
    """The page has stopped polling: once a request on its way is answered, none for 2.5 s."""
    page.wait_for_timeout(500)
    start = len(seen)
    page.wait_for_timeout(2500)
    assert polls(seen[start:]) == []


def move(gen, **changes):
    Generation.objects.filter(pk=gen.pk).update(updated_at=timezone.now(), **changes)


def test_a_page_with_five_running_jobs_polls_once_a_second_and_swaps_only_the_changed_card(page, team, user):
    gens = running(team, user, 5)
    log_in(page)
    seen = count_polls(page)
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.locator("article.job[data-stamp]")).to_have_count(5)
    page.wait_for_timeout(1200)  # the first poll is on its way
    start = len(seen)
    page.wait_for_timeout(4000)
    asked = polls(seen[start:])
    assert 3 <= len(asked) <= 5, asked  # one request a second for all five cards
    assert all("/jobs/poll" in u for u in asked), asked
    assert all(u.count("c=") == 5 for u in asked), asked  # each asks about every active card

    # One job finishes: its card (only) is swapped, and it is no longer asked about.
    done = gens[2]
    move(done, status=Generation.FAILED, error_message="The provider said no.", phase="")
    card = page.locator(f"#job-{done.uuid}")
    expect(card).to_have_attribute("data-status", "failed")
    expect(card).to_contain_text("The provider said no.")
    expect(card).not_to_have_attribute("data-stamp", re.compile(".*"))
    expect(page.locator("article.job[data-stamp]")).to_have_count(4)
    start = len(seen)
    page.wait_for_timeout(1500)
    assert polls(seen[start:]) and all(u.count("c=") == 4 for u in polls(seen[start:]))

    # The others finish: swapped too, and the page stops asking (286).
    for gen in gens:
        if gen is not done:
            move(gen, status=Generation.SUCCEEDED, phase="")
    expect(page.locator("article.job[data-status=succeeded]")).to_have_count(4)
    expect(page.locator("article.job[data-stamp]")).to_have_count(0)
    assert_no_more_polls(page, seen)
    assert not page.problems, page.problems


def test_the_poll_starts_with_a_job_from_the_form_and_stops_when_it_is_done(page, team, user):
    log_in(page)
    seen = count_polls(page)
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.locator("#jobs .empty")).to_be_visible()
    page.wait_for_timeout(2500)
    assert polls(seen) == []  # nothing active: no request at all
    for round in range(2):  # and again once it has stopped
        prompt = f"a lighthouse at dusk, take {round}"
        page.get_by_role("textbox", name="Prompt", exact=True).fill(prompt)
        page.get_by_role("button", name="Generate").click()
        card = page.locator("#jobs > article.job").first
        expect(card).to_contain_text(prompt)
        expect(card).to_have_attribute("data-stamp", re.compile(r"^\d+$"))
        gen = Generation.objects.get(params__prompt=prompt)  # no worker here: it stays queued until moved
        start = len(seen)
        page.wait_for_timeout(2200)
        asked = polls(seen[start:])
        assert 1 <= len(asked) <= 3 and all(f"c={gen.uuid}" in u for u in asked), asked
        move(gen, status=Generation.FAILED, error_message="The provider said no.", phase="")
        expect(card).to_have_attribute("data-status", "failed")
        expect(page.locator("#jobs > article.job")).to_have_count(round + 1)  # updated in place, no copy
        assert_no_more_polls(page, seen)
    assert not page.problems, page.problems


def test_a_job_started_in_another_tab_appears_on_the_same_poll(page, team, user):
    first, = running(team, user, 1)
    log_in(page)
    seen = count_polls(page)
    page.goto("/?provider=kie&model=seedream-v4")
    expect(page.locator("article.job")).to_have_count(1)
    other, = running(team, user, 1, created_at=timezone.now() + timedelta(seconds=1))
    expect(page.locator("#jobs > article.job").first).to_have_attribute("id", f"job-{other.uuid}", timeout=6000)
    expect(page.locator("article.job")).to_have_count(2)
    assert not polls(seen) or all("/jobs/poll" in u for u in polls(seen))
    assert not page.problems, page.problems


def test_a_finished_job_on_its_detail_page_stops_the_polling(page, team, user):
    gen, = running(team, user, 1)
    log_in(page)
    seen = count_polls(page)
    page.goto(gen.get_absolute_url())
    expect(page.locator("article.job")).to_have_attribute("data-status", "running")
    move(gen, status=Generation.FAILED, error_message="The provider said no.", phase="")
    # The detail page reloads (a finished job's page is laid out differently) and then asks no more.
    expect(page.locator("article.job")).to_have_attribute("data-status", "failed")
    expect(page.get_by_role("alert")).to_contain_text("The provider said no.")
    assert_no_more_polls(page, seen)
    assert not page.problems, page.problems


def test_the_rate_limit_countdown_ticks_without_a_request_for_it(page, team, user):
    gen = Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                    params={"prompt": "a quiet harbour"}, status=Generation.QUEUED,
                                    wait_reason=states.WAIT_RATE_LIMIT, due_at=timezone.now() + timedelta(seconds=40))
    log_in(page)
    seen = count_polls(page)
    page.goto(gen.get_absolute_url())
    note = page.get_by_test_id("note")
    expect(note).to_contain_text(re.compile(r"waiting for rate limit, retrying in \d+ s"))
    first = int(re.search(r"retrying in (\d+) s", note.inner_text()).group(1))
    page.wait_for_timeout(2500)
    later = int(re.search(r"retrying in (\d+) s", note.inner_text()).group(1))
    assert first - 4 <= later <= first - 1, (first, later)
    elapsed = page.get_by_test_id("elapsed").inner_text()
    assert re.fullmatch(r"\d+s", elapsed), elapsed
    # The polls were answered 204 (nothing changed): the countdown is the page's own.
    assert all("/jobs/poll" in u for u in polls(seen))
    assert not page.problems, page.problems
