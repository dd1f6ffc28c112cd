"""A provider or model taken out of the settings: its generations and charges
still show everywhere, under their stored names, and a job of it that was
still running fails with a clear config error."""

from decimal import Decimal

from django.test import override_settings
from django.urls import reverse
import pytest

from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.models import Entry
from playground.providers import registry

from tests import factories
from tests.helpers import run_tasks, step_job

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def history(sandbox, team, user):
    """Jobs of KIE in every state, charged and not, made while KIE is configured."""
    done = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse at dusk")
    retired = factories.job(team, user, "kie", "seedream-v4", prompt="a field of sunflowers")
    run_tasks(until=done)
    run_tasks(until=retired)
    assert done.status == retired.status == Generation.SUCCEEDED
    # A model its (still configured) provider no longer declares.
    Generation.objects.filter(pk=retired.pk).update(provider="kwiki", model="retired-model")
    Entry.objects.filter(generation=retired).update(provider="kwiki", model="retired-model")
    failed = factories.job(team, user, "kie", "seedream-v4", prompt="a snowy pass")
    Generation.objects.filter(pk=failed.pk).update(
        status=Generation.FAILED, error_kind="download", error_message="The image could not be saved.")
    book.capture(failed, None, no_image=True)
    running = factories.job(team, user, "kie", "seedream-v4", prompt="a quiet bay")
    Generation.objects.filter(pk=running.pk).update(status=Generation.RUNNING, provider_job_id="task-gone-1")
    queued = factories.job(team, user, "kie", "seedream-v4", prompt="a rocky shore")
    return {g: Generation.objects.get(pk=v.pk) for g, v in
            {"done": done, "retired": retired, "failed": failed, "running": running, "queued": queued}.items()}


@pytest.fixture
def kie_removed(settings):
    providers = {k: v for k, v in settings.PROVIDERS.items() if k != "kie"}
    with override_settings(PROVIDERS=providers):
        registry.adapter_classes.cache_clear()
        yield
    registry.adapter_classes.cache_clear()


def test_every_page_shows_a_removed_provider_and_model_by_their_stored_names(client_in, history, kie_removed):
    done, retired, failed, running = (history[k] for k in ("done", "retired", "failed", "running"))
    img, retired_img = done.images.get(), retired.images.get()
    pages = {
        "playground": reverse("playground"),
        "new jobs": reverse("poll_jobs") + "?since=0",  # all of them as new cards (one still running)
        "gallery": reverse("gallery"),
        "credits": reverse("credits"),
        "team": reverse("team"),
    }
    for key, gen in history.items():
        pages[f"detail {key}"] = gen.get_absolute_url()
    for name, url in pages.items():
        response = client_in.get(url)
        assert response.status_code == 200, name
        html = response.content.decode()
        if name in ("playground", "new jobs") or name.startswith("detail"):
            if "retired" not in name:
                assert "kie &middot; seedream-v4" in html, name  # the stored keys, not "KIE.ai - Seedream V4"
        assert "KIE.ai" not in html and "Seedream V4" not in html, name
    # Card fragments, as the playground polls them.
    for gen in (done, failed, running):
        card = client_in.get(gen.get_absolute_url(), **HTMX)
        assert card.status_code == 200
        assert "kie &middot; seedream-v4" in card.content.decode()
    assert "Kwiki AI &middot; retired-model" in client_in.get(retired.get_absolute_url(),
                                                            **HTMX).content.decode()
    for url in (img.get_absolute_url(), img.thumbnail_url(), img.get_absolute_url() + "?download=1",
                retired_img.get_absolute_url(), retired_img.thumbnail_url()):
        response = client_in.get(url)
        assert response.status_code == 200, url
        b"".join(response.streaming_content)
    assert "seedream-v4-" in client_in.get(img.get_absolute_url() + "?download=1")["Content-Disposition"]

    credits = client_in.get(reverse("credits")).content.decode()
    assert "kie - seedream-v4" in credits and "Kwiki AI - retired-model" in credits
    assert "paid, no image" in credits
    gallery = client_in.get(reverse("gallery")).content.decode()
    assert "seedream-v4" in gallery and "retired-model" in gallery

    detail = client_in.get(done.get_absolute_url()).content.decode()
    assert "Copy as code" not in detail  # no request can be built for it
    assert "a lighthouse at dusk" in detail  # the stored parameters, as stored
    # No remix link to a form that no longer exists; the way back is the plain playground.
    assert "remix=" not in detail and "Model no longer offered" in detail
    assert f'href="{reverse("playground")}?provider=kie' not in detail
    retired_detail = client_in.get(retired.get_absolute_url()).content.decode()
    assert "remix=" not in retired_detail and "retired-model" in retired_detail


def test_a_configured_job_still_offers_remix_and_code(client_in, history):
    detail = client_in.get(history["done"].get_absolute_url()).content.decode()
    assert "KIE.ai &middot; Seedream V4" in detail
    assert "Copy as code" in detail and "remix=" in detail and "Model no longer offered" not in detail


def test_an_active_job_of_a_removed_provider_fails_with_a_config_error(history, kie_removed):
    queued, running = history["queued"], history["running"]
    for gen in (queued, running):
        Generation.objects.filter(pk=gen.pk).update(due_at=gen.created_at)
        assert step_job(gen) != "not due"
        gen.refresh_from_db()
        assert gen.status == Generation.FAILED
        assert gen.error_kind == "config"
        assert "no longer configured" in gen.error_message
        assert gen.endpoint_source == "" or gen is running  # never sent anywhere
    assert not Entry.objects.filter(generation__in=[queued, running], kind=Entry.CAPTURE).exists()


def test_a_removed_model_of_a_configured_provider_describes_itself_by_its_key(history):
    gen = history["retired"]
    assert gen.provider_label == "Kwiki AI" and gen.model_label == "retired-model"
    assert gen.spec.params == () and gen.spec.default_estimate == Decimal("0")
    assert not gen.is_configured and history["done"].is_configured
