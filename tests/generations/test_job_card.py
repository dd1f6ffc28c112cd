"""What the job card and the detail page say: amounts with their unit, a
countdown that ends, how a canceled job was canceled, where a failed job
stopped, parameters by their labels, and the card's links and forms."""

from datetime import timedelta
from decimal import Decimal
import re

from django.urls import reverse
from django.utils import timezone
import pytest

from playground.generations.pipeline import create, results
from playground.generations.models import Generation

from tests.helpers import run_tasks, step_job

HTMX = {"HTTP_HX_REQUEST": "true"}


def card(client, gen, **headers):
    return client.get(reverse("generation", args=[gen.uuid]), **HTMX, **headers).content.decode()


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def make_due(gen):
    """The wait is over (no sleeping: the due time is moved)."""
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, shown", [
    (Decimal("1"), "1 credit"), (Decimal("1.0000"), "1 credit"), (Decimal("0.5"), "0.5 credits"),
    (Decimal("2"), "2 credits"), (Decimal("0"), "0 credits"), (Decimal("3.5000"), "3.5 credits"), (None, "-"),
])
def test_an_amount_reads_with_its_unit_singular_only_for_exactly_one(value, shown):
    from playground.generations.templatetags.playground import credits_text

    assert credits_text(value) == shown


def test_the_card_says_est_1_credit_and_the_credits_page_1_credit(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a small boat", "quality": "fast", "style": "realistic"})
    assert "est. 1 Kwiki credit " in text(card(client_in, gen)) and "1 Kwiki credits" not in card(client_in, gen)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert "&middot; 1 Kwiki credit " in text(card(client_in, gen))
    page = client_in.get(reverse("credits")).content.decode()
    assert "1 Kwiki credit" in page and "1 Kwiki credits" not in page


# --- the retry countdown --------------------------------------------------------------------


def test_the_retry_countdown_ends_with_retrying_now_never_0_s(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate [500]"})
    assert step_job(gen) != "not due"  # the provider answers 500: retried later
    gen.refresh_from_db()
    assert gen.status == Generation.QUEUED and gen.attempts == 1
    assert re.search(r"retrying in [1-9]\d* s", card(client_in, gen))
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now() + timedelta(seconds=0.4))
    html = card(client_in, gen)
    assert "retrying now" in html and "0 s" not in html
    make_due(gen)
    html = card(client_in, gen)
    assert "retrying now" in html and "0 s" not in html


# --- how a canceled job was canceled -------------------------------------------------------------


def refuse(gen, times):
    for _ in range(times):
        make_due(gen)
        assert step_job(gen) != "not due"
    gen.refresh_from_db()


def test_a_job_canceled_after_eight_refused_attempts_does_not_say_before_it_was_sent(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate [500]"})
    refuse(gen, 8)
    assert gen.status == Generation.QUEUED and gen.attempts == 8  # the provider said 500 eight times
    html = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX).content.decode()
    assert "Canceled after 8 refused attempts to send it: nothing was charged." in html
    assert "before it was sent" not in html
    detail = client_in.get(gen.get_absolute_url()).content.decode()
    assert "Canceled after 8 refused attempts" in detail


def test_one_refused_attempt_reads_singular(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate [500]"})
    refuse(gen, 1)
    html = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX).content.decode()
    assert "Canceled after 1 refused attempt to send it: nothing was charged." in html


def test_a_job_canceled_while_waiting_out_the_providers_rate_limit_says_so(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate [429]"})
    refuse(gen, 1)
    assert gen.status == Generation.QUEUED and gen.attempts == 0  # a provider's wait is not a failure
    html = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX).content.decode()
    assert "Canceled while waiting to send it again" in html and "before it was sent" not in html


def test_a_job_never_sent_says_canceled_before_it_was_sent(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate"})
    html = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX).content.decode()
    assert "Canceled before it was sent: nothing was charged." in html


def test_a_job_canceled_while_being_sent_and_then_refused_is_not_sent_again(client_in, sandbox, team, user):
    from playground.providers.errors import ProviderError

    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a gate"})
    assert gen.transition(Generation.QUEUED, status=Generation.SUBMITTING, endpoint_source="sandbox")
    assert gen.cancel() == "tracking"  # the request is on its way
    # ... and the provider refuses it with a 500: it goes back to the queue.
    results.retry_later(gen, Generation.SUBMITTING, ProviderError("server_error", "Server error"),
                     back_to=Generation.QUEUED)
    make_due(gen)
    run_tasks(until=gen)
    assert gen.status == Generation.CANCELED and not gen.provider_job_id and gen.submitted_at is None
    assert "Canceled after 1 refused attempt" in card(client_in, gen)


# --- where a failed job stopped ---------------------------------------------------------------------


def states(gen):
    from playground.generations.templatetags.playground import steps

    return [(s["name"], s["state"]) for s in steps(gen)]


def test_a_job_refused_when_sent_is_marked_failed_at_submitted(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a kite [402]"})
    run_tasks(until=gen)
    assert states(gen) == [("queued", "done"), ("submitted", "failed"), ("generating", "todo"), ("done", "todo")]
    html = card(client_in, gen)
    assert re.search(r'<li class="step step-failed">.*submitted<span class="sr-only"> \(failed here\)</span></li>',
                     html)


def test_a_job_the_provider_failed_is_marked_failed_at_generating(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a kite [fail]"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert states(gen) == [("queued", "done"), ("submitted", "done"), ("generating", "failed"), ("done", "todo")]


def test_a_job_whose_image_could_not_be_fetched_is_marked_failed_at_done(team, user):
    gen = Generation(team=team, owner=user, provider="kie", model="seedream-v4", status=Generation.FAILED,
                     submitted_at=timezone.now(), provider_job_id="task-1", error_kind="download")
    assert states(gen) == [("queued", "done"), ("submitted", "done"), ("generating", "done"), ("done", "failed")]


# --- the detail page ------------------------------------------------------------------------------


def test_the_detail_page_lists_parameters_by_their_labels(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kvid", model="text-to-image", params={
        "prompt": "a red kite", "size_mode": "aspect_ratio", "aspect_ratio": "1:1", "guidance_scale": 7.5,
        "output_format": "png", "enable_safety_checker": False, "num_images": 1, "an_old_key": "kept"})
    html = client_in.get(gen.get_absolute_url()).content.decode()
    for label, value in [("Prompt", "a red kite"), ("Guidance scale", "7.5"), ("Format", "PNG"),
                         ("Safety checker", "No"), ("Images", "1"), ("an_old_key", "kept")]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in html, label
    assert "<dt>output_format</dt>" not in html and "<dt>enable_safety_checker</dt>" not in html


def test_the_detail_page_has_no_details_link_to_itself_but_the_playground_card_has(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a cup"})
    details = f'href="{gen.get_absolute_url()}">Details<'
    assert details not in client_in.get(gen.get_absolute_url()).content.decode()
    assert details in client_in.get(reverse("playground")).content.decode()
    # The card polled from the detail page (htmx says where it comes from) has none either.
    from_detail = {"HTTP_HX_CURRENT_URL": "http://testserver" + gen.get_absolute_url()}
    assert details not in card(client_in, gen, **from_detail)
    assert details in card(client_in, gen, HTTP_HX_CURRENT_URL="http://testserver/")
    canceled = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX, **from_detail).content.decode()
    assert "Canceled before it was sent" in canceled and details not in canceled


# --- the card's next steps ---------------------------------------------------------------------------


def test_the_finished_card_offers_download_and_use_as_input_and_stops_polling(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a fern"})
    run_tasks(until=gen)
    img = gen.images.get()
    html = card(client_in, gen)
    assert f'href="{img.get_absolute_url()}?download=1" download>Download<' in html
    assert f'action="{reverse("use_as_input", args=[img.uuid])}"' in html
    assert '<option value="kie:recraft-upscale">KIE.ai - Recraft upscale 2x</option>' in html
    assert "hx-get" not in html and "hx-trigger" not in html  # no request added by the card's forms
    response = client_in.post(reverse("use_as_input", args=[img.uuid]), {"target": "kie:recraft-upscale"})
    assert "model=recraft-upscale" in response["Location"] and "input=" in response["Location"]
