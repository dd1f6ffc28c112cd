"""The playground page, its form and the polled job card (htmx fragments)."""

from django.urls import reverse

from playground.generations.pipeline import create
from playground.generations.models import Generation

from tests.helpers import run_tasks, step_job

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_it_shows_the_seedream_form_with_help_and_defaults(client_in, sandbox):
    page = client_in.get(URL).content.decode()
    assert "KIE.ai &rarr; Seedream V4" in page
    for name in ("prompt", "image_size", "image_resolution", "num_inference_steps", "seed"):
        assert f'name="{name}"' in page
    assert "More steps: more detail, slower (1-50). Default: 30." in page
    assert "Using the local sandbox" in page
    assert 'hx-headers=\'{"X-CSRFToken"' in page  # htmx requests carry the CSRF token


def test_submitting_the_form_with_htmx_returns_a_polling_job_card(client_in, sandbox, user):
    response = client_in.post(URL, {"prompt": "a foggy valley", "image_size": "square", "image_resolution": "1K",
                                    "num_inference_steps": "20", "seed": "4"}, **HTMX)
    assert response.status_code == 200
    gen = Generation.objects.get()
    assert gen.params == {"prompt": "a foggy valley", "image_size": "square", "image_resolution": "1K",
                          "num_inference_steps": 20, "seed": 4}
    html = response.content.decode()
    assert f'id="job-{gen.uuid}"' in html
    assert "data-stamp=" in html  # asked about by the page's one poll
    # ... which this swaps in (out of band), polling again if it had stopped: one poller, not one per card.
    assert html.count('id="job-poll"') == 1 and html.count("every 1s") == 1
    assert f'<div id="job-poll" hidden hx-get="{reverse("poll_jobs")}" hx-trigger="every 1s" hx-swap="none" hx-swap-oob="true">' in html
    assert "queued" in html
    assert gen.owner == user


def test_a_plain_post_works_without_javascript(client_in, sandbox):
    response = client_in.post(URL, {"prompt": "a foggy valley", "image_size": "square", "image_resolution": "1K",
                                    "num_inference_steps": "30"})
    assert response.status_code == 302
    assert Generation.objects.count() == 1


def test_bad_input_shows_an_error_on_its_field_and_creates_no_job(client_in, sandbox):
    response = client_in.post(URL, {"prompt": "", "image_size": "huge", "image_resolution": "1K",
                                    "num_inference_steps": "99"}, **HTMX)
    assert response["HX-Retarget"] == "#model-form"
    assert response["HX-Reswap"] == "outerHTML"  # replaces the form, not nested inside it
    html = response.content.decode()
    assert "This field is required." in html
    assert "Ensure this value is less than or equal to 50." in html
    assert "Select a valid choice. huge is not one of the available choices." in html
    assert 'value="99"' in html  # what the user typed is kept
    assert Generation.objects.count() == 0


def test_the_card_polls_while_active_and_stops_when_done(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a calm sea"})
    url = reverse("generation", args=[gen.uuid])
    active = client_in.get(url, **HTMX)
    assert active.status_code == 200
    assert "data-stamp=" in active.content.decode()  # the page's one poll asks about it
    run_tasks(until=gen)
    done = client_in.get(url, **HTMX)
    assert done.status_code == 200
    html = done.content.decode()
    assert "hx-trigger" not in html and "data-stamp" not in html
    assert reverse("image_thumb", args=[gen.images.get().uuid]) in html
    assert 'data-status="succeeded"' in html


def test_a_failed_card_shows_the_message_and_what_to_do(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a kite [402]"})
    run_tasks(until=gen)
    html = client_in.get(reverse("generation", args=[gen.uuid]), **HTMX).content.decode()
    assert "Insufficient Credits" in html
    assert "Top up the provider account" in html
    assert "Fix and retry" in html


def test_the_image_survives_and_opens_full_size(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                      params={"prompt": "a red barn", "image_size": "portrait_4_3"})
    run_tasks(until=gen)
    img = gen.images.get()
    response = client_in.get(reverse("image", args=[img.uuid]))
    assert response["Content-Type"] == "image/png"
    data = b"".join(response.streaming_content)
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(data)).size == (768, 1024)
    assert len(data) == img.bytes
    gallery = client_in.get(reverse("gallery")).content.decode()
    assert reverse("image", args=[img.uuid]) in gallery


def test_remix_prefills_the_form_with_the_same_parameters(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                      params={"prompt": "a lighthouse", "num_inference_steps": 12, "seed": 77})
    html = client_in.get(URL + f"&remix={gen.uuid}").content.decode()
    assert "a lighthouse</textarea>" in html
    assert 'value="12"' in html and 'value="77"' in html


def test_cancel_a_queued_job_sends_nothing(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "an owl"})
    html = client_in.post(reverse("cancel", args=[gen.uuid]), **HTMX).content.decode()
    gen.refresh_from_db()
    assert gen.status == Generation.CANCELED
    assert "nothing was charged" in html
    run_tasks()
    gen.refresh_from_db()
    assert gen.status == Generation.CANCELED and not gen.provider_job_id


def test_a_canceled_running_job_is_still_tracked_and_shown_as_finished_anyway(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "an owl"})
    assert step_job(gen) != "not due"  # sent
    client_in.post(reverse("cancel", args=[gen.uuid]))
    gen.refresh_from_db()
    assert gen.stage == "canceled (still tracking)"
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED and gen.images.count() == 1
    html = client_in.get(reverse("generation", args=[gen.uuid])).content.decode()
    assert "canceled (finished anyway)" in html


def test_credits_page_totals_successful_generations_only(client_in, sandbox, team, user):
    ok = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a cup"})
    bad = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a cup [402]"})
    run_tasks(until=ok)
    run_tasks(until=bad)
    html = client_in.get(reverse("credits")).content.decode()
    assert "3.5 KIE credits" in html  # the one success, in its unit
    assert "7 KIE credits" not in html  # the failure released its reservation


def test_a_double_click_creates_one_job_and_the_next_submit_gets_a_fresh_token(client_in, sandbox):
    page = client_in.get(URL).content.decode()
    import re

    token = re.search(r'name="submit_token" id="submit-token" value="([0-9a-f-]+)"', page).group(1)
    data = {"prompt": "a tin robot", "image_size": "square", "image_resolution": "1K",
            "num_inference_steps": "30", "submit_token": token}
    first = client_in.post(URL, data, **HTMX).content.decode()
    second = client_in.post(URL, data, **HTMX).content.decode()
    assert Generation.objects.count() == 1
    gen = Generation.objects.get()
    assert f'id="job-{gen.uuid}"' in first and f'id="job-{gen.uuid}"' in second
    fresh = re.search(r'id="submit-token" value="([0-9a-f-]+)" hx-swap-oob="true"', first).group(1)
    assert fresh != token
    client_in.post(URL, {**data, "submit_token": fresh}, **HTMX)
    assert Generation.objects.count() == 2


def test_the_cost_estimate_follows_the_choices_in_the_form(client_in, sandbox):
    url = reverse("estimate", args=["kwiki", "generate"])
    assert "1 Kwiki credit<" in client_in.get(url + "?quality=fast", **HTMX).content.decode()
    assert "2 Kwiki credits<" in client_in.get(url + "?quality=hires", **HTMX).content.decode()
    kvid = reverse("estimate", args=["kvid", "text-to-image"])
    big = client_in.get(kvid + "?size_mode=custom&width=1024&height=1024&num_images=2", **HTMX).content.decode()
    small = client_in.get(kvid + "?size_mode=custom&width=512&height=512&num_images=1", **HTMX).content.decode()
    assert "16 kvid credits<" in big and "2 kvid credits<" in small


def test_defaults_are_shown_as_the_user_reads_them(client_in, sandbox):
    page = client_in.get(reverse("playground") + "?provider=kie&model=seedream-v4").content.decode()
    assert "Default: 1K." in page
    assert "Default: square" not in page  # the label, not the raw value
