"""The page's one job poll (jobs/poll): a page holds one htmx poller
(#job-poll, every 1s) while it shows an active card, sends its active cards
with their version stamps and gets back only the changed cards (swapped out
of band), new jobs of this user on the playground (on top of the job column,
out of band), 204 when nothing changed, or 286 (stop polling) when no card
of the page is active any more: cheaply and without leaking another team's
or a private job."""

from datetime import timedelta
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
import pytest

from playground.generations.models import Generation
from playground.generations.polling import stamp

from tests import factories
from tests.helpers import login, run_tasks, step_job

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL = reverse("poll_jobs")


def job(team, user, prompt="a calm sea", **params):
    return factories.job(team, user, "kie", "seedream-v4", prompt=prompt, **params)


def shown(gen):
    """What a page holds for the card of gen: its uuid and version stamp."""
    gen.refresh_from_db()
    return f"{gen.uuid}:{stamp(gen.updated_at)}"


def poll(client, *cards, since=None, current=None, **extra):
    params = {"c": list(cards)}
    if since is not None:
        params["since"] = since
    headers = dict(HTMX)
    if current:
        headers["HTTP_HX_CURRENT_URL"] = "http://testserver" + current
    return client.get(POLL, params, **headers, **extra)


def touch(gen, **changes):
    """The job moves on (as a worker would write it): a new version stamp."""
    Generation.objects.filter(pk=gen.pk).update(updated_at=timezone.now() + timedelta(milliseconds=5), **changes)


def cards_in(html):
    return re.findall(r'<article class="job[^"]*" id="job-([0-9a-f-]+)"', html)


STOP = 286  # htmx stops the poller (django-htmx's HttpResponseStopPolling)
POLLER = re.compile(r'<div id="job-poll"[^>]*>')


def pollers(html):
    return POLLER.findall(html)


# --- what the page carries -----------------------------------------------------------------------


def test_a_page_with_active_cards_has_one_poller_and_each_card_its_stamp(client_in, team, user):
    gens = [job(team, user, f"a calm sea {i}") for i in range(3)]
    html = client_in.get(reverse("playground")).content.decode()
    for gen in gens:
        gen.refresh_from_db()
        assert f'data-stamp="{stamp(gen.updated_at)}"' in html
    # One request a second for the whole page, whatever the number of cards; its answer is swapped out of band.
    assert pollers(html) == [f'<div id="job-poll" hidden hx-get="{POLL}" hx-trigger="every 1s" hx-swap="none">']
    assert html.count("hx-trigger=\"every") == 1
    assert "jobcards.js" in html and "jobpoll.js" not in html  # the stamps and the clock; no hand-rolled poll
    detail = client_in.get(gens[0].get_absolute_url()).content.decode()
    assert pollers(detail) == [f'<div id="job-poll" hidden hx-get="{POLL}" hx-trigger="every 1s" hx-swap="none">']
    assert "jobcards.js" in detail


def test_a_playground_with_no_active_card_does_not_poll(client_in, sandbox, team, user):
    html = client_in.get(reverse("playground")).content.decode()
    # The poller is there for a job started from the form to swap in, without a request of its own.
    assert pollers(html) == ['<div id="job-poll" hidden>'] and "every 1s" not in html
    gen = job(team, user)
    run_tasks(until=gen)
    html = client_in.get(reverse("playground")).content.decode()
    assert f'id="job-{gen.uuid}"' in html and pollers(html) == ['<div id="job-poll" hidden>']


def test_a_finished_job_s_detail_page_does_not_poll(client_in, sandbox, team, user):
    gen = job(team, user)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    detail = client_in.get(gen.get_absolute_url()).content.decode()
    assert "data-stamp" not in detail and pollers(detail) == [] and "hx-trigger" not in detail


# --- unchanged: 204, cheap -----------------------------------------------------------------------


def test_unchanged_cards_answer_204_with_no_body_and_no_cookie(client_in, team, user):
    gens = [job(team, user, f"a calm sea {i}") for i in range(3)]
    response = poll(client_in, *[shown(g) for g in gens])
    assert response.status_code == 204
    assert response.content == b""
    assert not response.cookies  # no session written, no CSRF cookie set


def test_the_query_count_of_a_poll_does_not_grow_with_the_number_of_cards(client_in, team, user):
    def queries(n):
        Generation.objects.all().delete()
        cards = [shown(job(team, user, f"a calm sea {i}")) for i in range(n)]
        newest = Generation.objects.order_by("-created_at").first()
        poll(client_in, *cards)  # warm: the session and the team are read the same way each time
        with CaptureQueriesContext(connection) as ctx:
            assert poll(client_in, *cards, since=stamp(newest.created_at)).status_code == 204
        return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]

    one, _ = queries(1)
    many, sql = queries(12)
    assert one == many, sql
    # The session, the user, the membership and its team, and one query for the cards (and new jobs).
    assert many <= 5, sql
    assert sum(f"FROM \"{Generation._meta.db_table}\"" in q for q in sql) == 1, sql


# --- changed: only those, swapped out of band --------------------------------------------------


def test_only_the_changed_card_comes_back_swapped_out_of_band(client_in, team, user):
    a, b = job(team, user, "a calm sea"), job(team, user, "a quiet lake")
    page = [shown(a), shown(b)]
    touch(b, phase="generating", status=Generation.RUNNING)
    response = poll(client_in, *page)
    assert response.status_code == 200
    html = response.content.decode()
    assert cards_in(html) == [str(b.uuid)]
    assert 'hx-swap-oob="true"' in html
    b.refresh_from_db()
    assert f'data-stamp="{stamp(b.updated_at)}"' in html  # the next poll sends the new stamp
    assert poll(client_in, shown(a), shown(b)).status_code == 204


def test_the_last_active_card_finishing_comes_back_final_and_stops_the_poll(client_in, sandbox, team, user):
    gen = job(team, user)
    page = shown(gen)
    run_tasks(until=gen)
    response = poll(client_in, page, current=reverse("playground"))
    assert response.status_code == STOP  # htmx swaps the card, then stops polling
    html = response.content.decode()
    assert cards_in(html) == [str(gen.uuid)] and 'hx-swap-oob="true"' in html
    assert 'data-status="succeeded"' in html and "data-stamp" not in html
    assert reverse("image_thumb", args=[gen.images.get().uuid]) in html


def test_a_finished_card_among_active_ones_keeps_the_poll_going(client_in, sandbox, team, user):
    done, running = job(team, user, "a calm sea"), job(team, user, "a quiet lake")
    page = [shown(done), shown(running)]
    touch(done, status=Generation.FAILED, error_message="The provider said no.", phase="")
    response = poll(client_in, *page, current=reverse("playground"))
    assert response.status_code == 200 and cards_in(response.content.decode()) == [str(done.uuid)]
    assert poll(client_in, shown(running), current=reverse("playground")).status_code == 204  # the next poll: one card


def test_a_page_whose_cards_are_gone_is_told_to_stop(client_in, team, user):
    gen = job(team, user)
    page = shown(gen)
    gen.delete()  # deleted in another tab
    response = poll(client_in, page)
    assert response.status_code == STOP and response.content == b""
    assert poll(client_in).status_code == STOP  # nothing to ask about at all


def test_a_job_finished_on_its_own_detail_page_reloads_the_page(client_in, sandbox, team, user):
    gen = job(team, user)
    page = shown(gen)
    run_tasks(until=gen)
    response = poll(client_in, page, current=gen.get_absolute_url())
    # django-htmx's HttpResponseClientRefresh: the images are shown above the card.
    assert response.status_code == 200 and response["HX-Refresh"] == "true" and response.content == b""
    # Without JS the detail page itself shows the state on reload.
    assert 'data-status="succeeded"' in client_in.get(gen.get_absolute_url()).content.decode()


def test_the_countdown_is_sent_as_seconds_left_for_the_page_to_tick(client_in, sandbox, team, user):
    gen = job(team, user, "a gate [429]")
    assert step_job(gen) != "not due"  # the provider asks to wait: retried later
    gen.refresh_from_db()
    assert gen.is_waiting_to_retry
    html = client_in.get(gen.get_absolute_url()).content.decode()
    left = int(re.search(r'data-due-in="(\d+)"', html).group(1))
    assert left >= 1 and re.search(rf"retrying in {left} s", html)
    assert re.search(r'data-elapsed="\d+"', html)


# --- new jobs ride on the same request -------------------------------------------------------


def test_new_jobs_of_this_user_ride_on_the_same_poll(client_in, team, user):
    old = job(team, user, "a calm sea")
    old.refresh_from_db()
    since = stamp(old.created_at)
    assert poll(client_in, shown(old), since=since).status_code == 204
    new = job(team, user, "a quiet lake")  # started in another tab
    response = poll(client_in, shown(old), since=since)
    assert response.status_code == 200
    html = response.content.decode()
    assert cards_in(html) == [str(new.uuid)]
    # On top of the job column (htmx, out of band); the card itself replaces nothing.
    assert html.startswith('<div id="jobs" hx-swap-oob="afterbegin">') and html.count("hx-swap-oob") == 1


def test_a_new_job_already_finished_rides_along_with_the_stop(client_in, sandbox, team, user):
    old = job(team, user, "a calm sea")
    old.refresh_from_db()
    page, since = shown(old), stamp(old.created_at)
    run_tasks(until=old)
    new = job(team, user, "a quiet lake")
    run_tasks(until=new)
    response = poll(client_in, page, since=since, current=reverse("playground"))
    assert response.status_code == STOP  # nothing active left on the page
    assert sorted(cards_in(response.content.decode())) == sorted([str(old.uuid), str(new.uuid)])


def test_a_teammates_new_job_is_not_a_new_card_of_mine(client_in, team, user, bob):
    mine = job(team, user)
    mine.refresh_from_db()
    factories.job(team, bob, "kie", "seedream-v4", prompt="a shared lake")
    assert poll(client_in, shown(mine), since=stamp(mine.created_at)).status_code == 204
    assert poll(client_in, since=stamp(mine.created_at)).content == b""  # (no active card: 286, nothing in it)


# --- access --------------------------------------------------------------------------------------


def test_a_teammates_shared_job_polls_fine(client_in, team, user, bob):
    gen = job(team, bob, "a shared lake")
    Generation.objects.filter(pk=gen.pk).update(visibility="team")
    page = shown(gen)
    assert poll(client_in, page).status_code == 204
    touch(gen)
    assert cards_in(poll(client_in, page).content.decode()) == [str(gen.uuid)]


def test_another_teams_or_a_private_job_in_the_poll_is_ignored(client_in, team, user, bob, other_team, other_user):
    theirs = job(other_team, other_user, "a far island")
    private = job(team, bob, "a private lake")
    Generation.objects.filter(pk=private.pk).update(visibility="private")
    mine = job(team, user)
    stale = [f"{theirs.uuid}:0", f"{private.uuid}:0"]  # a stamp that differs from theirs
    response = poll(client_in, *stale)
    assert response.status_code == STOP and response.content == b""  # as if unknown: nothing to poll
    response = poll(client_in, *stale, f"{mine.uuid}:0")
    assert cards_in(response.content.decode()) == [str(mine.uuid)]
    assert "a far island" not in response.content.decode() and "a private lake" not in response.content.decode()
    # And another team's member sees nothing of ours.
    response = poll(login(other_user), f"{mine.uuid}:0")
    assert response.status_code == STOP and response.content == b""


def test_malformed_entries_are_ignored(client_in, team, user):
    gen = job(team, user)
    assert poll(client_in, "nonsense", "x:y", f"{gen.uuid}:zz", shown(gen), since="soon").status_code == 204


def test_signed_out_the_poll_shows_nothing(client, team, user):
    gen = job(team, user)
    response = client.get(POLL, {"c": f"{gen.uuid}:0"}, **HTMX)
    assert response.status_code == 302 and "a calm sea" not in response.content.decode()
