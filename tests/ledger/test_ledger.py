"""One finish, one charge; failed jobs are not charged (RELIABILITY 3)."""

from decimal import Decimal
from django.db import IntegrityError, transaction
import pytest

from playground.generations import jobs
from playground.generations.models import Generation
from playground.ledger.models import Charge

from tests.helpers import run_tasks


def test_a_successful_job_is_charged_once_with_the_basis_recorded(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a maple leaf"})
    run_tasks(until=gen)
    charge = Charge.objects.get()
    assert (charge.generation, charge.credits, charge.basis) == (gen, Decimal("3.5"), Charge.ESTIMATE)
    assert isinstance(charge.credits, Decimal)


def test_reported_credits_win_over_the_estimate(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a maple leaf", "quality": "hires"})
    run_tasks(until=gen)
    charge = Charge.objects.get(generation=gen)
    assert (charge.credits, charge.basis) == (Decimal("2"), Charge.REPORTED)


def test_failed_jobs_are_not_charged(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a leaf [fail]"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    assert not Charge.objects.exists()


def test_a_second_charge_for_the_same_job_cannot_be_written(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "an acorn"})
    run_tasks(until=gen)
    with pytest.raises(IntegrityError), transaction.atomic():
        Charge.objects.create(team=team, user=user, generation=gen, provider="kie", model="seedream-v4",
                              credits=Decimal("3.5"), basis=Charge.ESTIMATE)
    assert Charge.objects.filter(generation=gen).count() == 1


def test_two_finishers_write_one_charge(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pinecone"})
    jobs.advance(gen.pk)
    a, b = Generation.objects.get(pk=gen.pk), Generation.objects.get(pk=gen.pk)
    sandbox.finish_now()  # the provider has finished generating
    adapter = a.adapter_class(base_url=sandbox.url + "/kie", api_key="sandbox-key")
    outcome = adapter.check("seedream-v4", a.provider_job_id)
    results = {jobs.conclude(a, outcome), jobs.conclude(b, outcome)}
    assert "succeeded" in results
    assert Charge.objects.filter(generation=gen).count() == 1


# --- a paid result whose image could not be saved -------------------------------


def test_an_expired_result_link_fails_readably_and_records_paid_no_image(client_in, team, user, settings, tmp_path):
    from tests.helpers import start_sandbox, use_sandbox

    sb = start_sandbox(tmp_path, url_ttl=-1)  # every result link has already expired (HTTP 403)
    try:
        use_sandbox(settings, sb)
        settings.JOB_BACKOFF_BASE_SECONDS = 0.05
        gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4",
                          params={"prompt": "a harbour crane"})
        run_tasks(until=gen)
    finally:
        sb.stop()
    assert gen.status == Generation.FAILED
    assert "The result link expired before the image could be saved" in gen.error_message
    assert "HTTP" not in gen.error_message
    charge = Charge.objects.get(generation=gen)  # the provider charged: the ledger says so
    assert (charge.kind, charge.credits, charge.basis) == (Charge.NO_IMAGE, Decimal("3.5"), Charge.ESTIMATE)
    page = client_in.get("/credits/").content.decode()
    assert "paid, no image" in page
    assert "Total: 3.5 credits" in page or "Total: 3.50 credits" in page
    card = client_in.get(gen.get_absolute_url()).content.decode()
    assert "result link expired" in card and "HTTP 403" not in card


def test_an_image_that_cannot_be_saved_records_what_the_provider_reported(sandbox, team, user, settings):
    settings.IMAGE_MAX_PIXELS = 100  # any result is over the limit
    gen = jobs.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a maple leaf", "quality": "hires"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED and gen.error_kind == "download"
    assert "could not be saved" in gen.error_message
    charge = Charge.objects.get(generation=gen)
    assert (charge.kind, charge.credits, charge.basis) == (Charge.NO_IMAGE, Decimal("2"), Charge.REPORTED)
    assert not gen.images.exists()
