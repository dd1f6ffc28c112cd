"""Kwiki AI through the whole job pipeline: form, job, synchronous submit,
download, errors and rate limits."""

from decimal import Decimal

import pytest

from playground.generations.forms import form_for
from playground.generations.models import Generation
from playground.providers.errors import ProviderError
from playground.providers.kwiki import KwikiAdapter

from tests.factories import job
from tests.helpers import run_tasks, start_sandbox, step_job, use_sandbox

SPEC = KwikiAdapter.model("generate")


def test_it_generates_and_stores_a_kwiki_image(sandbox, team, user):
    gen = job(team, user, "kwiki", "generate", prompt="a lighthouse on a cliff", quality="hires", style="realistic")
    assert gen.cost_estimate == Decimal(2)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.provider_job_id.startswith("gen_")
    assert gen.credits_used == Decimal(2)
    img = gen.images.get()
    assert (img.width, img.height) == (1536, 1536)
    assert img.file.size == img.bytes > 0


def test_a_refused_job_keeps_its_params_and_the_error(sandbox, team, user):
    params = {"prompt": "a quiet harbour [402]", "quality": "fast", "style": "anime"}
    gen = job(team, user, "kwiki", "generate", **params)
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert gen.params == params
    assert gen.error_kind == "insufficient_credits"
    assert "needs 1 credits, 0 available" in gen.error_message
    assert gen.credits_used in (None, Decimal(0))
    assert not gen.images.exists()


def test_a_failed_generation_is_retried_because_it_was_not_charged(sandbox, settings, team, user):
    settings.JOB_BACKOFF_BASE_SECONDS = 0.05
    gen = job(team, user, "kwiki", "generate", prompt="an old oak tree [503-once]")
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    assert gen.images.count() == 1


def test_an_adult_style_job_is_flagged_adult(sandbox, team, user):
    adult = job(team, user, "kwiki", "generate", prompt="portrait photo in a park", style="nude", age=30, gender="female",
                 hair_color="brunette", snap_caption=True)
    plain = job(team, user, "kwiki", "generate", prompt="portrait photo in a park", style="realistic")
    assert adult.is_adult and not plain.is_adult
    run_tasks(until=adult)
    assert adult.status == Generation.SUCCEEDED, adult.error_message


def _style_choices(client):
    resp = client.get("/?provider=kwiki&model=generate")
    assert resp.status_code == 200
    return [value for value, _ in resp.context["form"].fields["style"].choices]


def test_the_form_offers_the_adult_style_only_to_teams_that_enabled_it(client_in, sandbox, team):
    assert _style_choices(client_in) == ["realistic", "anime"]
    resp = client_in.post("/?provider=kwiki&model=generate", {"prompt": "portrait photo in a park", "style": "nude",
                                                               "quality": "fast"})
    assert "style" in resp.context["form"].errors
    assert not Generation.objects.exists()

    team.adult_content_enabled = True
    team.save()
    assert _style_choices(client_in) == ["realistic", "anime", "nude"]


@pytest.mark.parametrize("age, ok", [(17, False), (18, True), (70, True), (71, False)])
def test_the_form_accepts_only_adult_ages(age, ok):
    form = form_for(SPEC)({"prompt": "portrait photo in a park", "quality": "fast", "style": "nude", "age": age},
                          adult_allowed=True)
    assert form.is_valid() is ok
    if ok:
        assert form.params()["age"] == age
    else:
        assert "age" in form.errors


def test_the_form_drops_appearance_fields_for_other_styles():
    form = form_for(SPEC)({"prompt": "a red barn", "quality": "fast", "style": "realistic", "age": 30,
                           "snap_caption": "on"}, adult_allowed=True)
    assert form.is_valid(), form.errors
    assert form.params() == {"prompt": "a red barn", "quality": "fast", "style": "realistic"}


def test_the_sandbox_rate_limit_becomes_a_visible_wait(tmp_path, settings, team, user):
    sb = start_sandbox(tmp_path, latency=0, rate_limits={"kwiki": [(2, 60.0)]})  # only the limit matters
    try:
        use_sandbox(settings, sb)
        adapter = KwikiAdapter(base_url=sb.url + "/kwiki", api_key="sandbox-key")
        assert adapter.submit("generate", {"prompt": "a green field"}).state == "succeeded"
        assert adapter.submit("generate", {"prompt": "a green field"}).state == "succeeded"
        with pytest.raises(ProviderError) as info:
            adapter.submit("generate", {"prompt": "a green field"})
        assert info.value.kind == "rate_limited" and info.value.status == 429
        assert 50 <= info.value.retry_after <= 61

        gen = job(team, user, "kwiki", "generate", prompt="a blue field")
        assert step_job(gen) != "not due"
        gen.refresh_from_db()
        assert gen.status == Generation.QUEUED  # waits instead of failing
        assert gen.phase.startswith("waiting for rate limit")
        assert gen.attempts == 0  # waiting out the provider's own hint is not a failure
        from django.utils import timezone

        assert (gen.due_at - timezone.now()).total_seconds() >= 45  # the hint is honoured, not capped
    finally:
        sb.stop()
