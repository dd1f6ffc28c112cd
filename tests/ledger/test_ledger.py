"""The ledger: reserve once, capture or release once, in the provider's own
unit; entries outlive users and generations (RELIABILITY 3)."""

from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
import pytest

from playground.generations.pipeline import create, queue, results
from playground.generations.models import Generation
from playground.ledger import book
from playground.ledger.models import Entry, ProviderBalance

from tests import factories
from tests.helpers import run_tasks, step_job


def entries(gen):
    return {e.kind: e for e in Entry.objects.filter(generation_uuid=gen.uuid)}


def test_a_successful_job_is_charged_once_with_the_basis_recorded(team, user):
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a maple leaf")  # KIE reports no cost
    e = entries(gen)
    assert set(e) == {"reserve", "capture"}
    assert (e["reserve"].amount, e["reserve"].unit) == (Decimal("3.5"), "kie_credit")
    charge = e["capture"]
    assert (charge.amount, charge.unit, charge.basis) == (Decimal("3.5"), "kie_credit", Entry.ESTIMATE)
    assert (charge.estimate, charge.reported, charge.username) == (Decimal("3.5"), None, "alice")


def test_reported_credits_win_over_the_estimate(team, user):
    gen = factories.finished_job(team, user, "kwiki", "generate", prompt="a maple leaf", quality="hires",
                                 credits=Decimal("2.5"))
    charge = entries(gen)["capture"]
    assert (charge.amount, charge.basis, charge.unit) == (Decimal("2.5"), Entry.REPORTED, "kwiki_credit")
    assert (charge.estimate, charge.reported, charge.difference) == (Decimal("2"), Decimal("2.5"), Decimal("0.5"))
    assert gen.credits_used == Decimal("2.5")


def test_failed_jobs_are_not_charged(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a leaf [fail]"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED
    e = entries(gen)
    assert set(e) == {"reserve", "release"} and e["release"].amount == e["reserve"].amount == Decimal("3.5")


def test_a_second_charge_for_the_same_job_cannot_be_written(team, user):
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="an acorn")
    for write in (lambda: book.capture(gen, Decimal("3.5")), lambda: book.reserve(gen)):
        with pytest.raises(IntegrityError), transaction.atomic():
            write()
    assert Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).count() == 1
    assert Entry.objects.filter(generation=gen, kind=Entry.RESERVE).count() == 1


def test_two_finishers_write_one_charge(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pinecone"})
    assert step_job(gen) != "not due"  # sent
    Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())
    [a] = queue.claim(1, "worker-a", among=Q(pk=gen.pk))
    # Worker A stalls past its lease: the job is due again and worker B claims it.
    Generation.objects.filter(pk=gen.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    [b] = queue.claim(1, "worker-b", among=Q(pk=gen.pk))
    assert (a.held_by, b.held_by) == ("worker-a", "worker-b")
    sandbox.finish_now()  # the provider has finished generating
    adapter = a.adapter_class(base_url=sandbox.url + "/kie", api_key="sandbox-key")
    outcome = adapter.check("seedream-v4", a.provider_job_id)
    said = [results.conclude(a, outcome), results.conclude(b, outcome)]
    assert said == ["succeeded", "another worker finished it"]
    assert Entry.objects.filter(generation=gen, kind=Entry.CAPTURE).count() == 1
    assert gen.images.count() == 1


# --- a paid result whose image could not be saved -------------------------------


def test_an_expired_result_link_fails_readably_and_records_paid_no_image(client_in, team, user, settings, tmp_path):
    from tests.helpers import start_sandbox, use_sandbox

    sb = start_sandbox(tmp_path, url_ttl=-1)  # every result link has already expired (HTTP 403)
    try:
        use_sandbox(settings, sb)
        settings.JOB_BACKOFF_BASE_SECONDS = 0.05
        gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                          params={"prompt": "a harbour crane"})
        run_tasks(until=gen)
    finally:
        sb.stop()
    assert gen.status == Generation.FAILED
    assert "The result link expired before the image could be saved" in gen.error_message
    assert "HTTP" not in gen.error_message
    charge = entries(gen)["capture"]  # the provider charged: the ledger says so
    assert (charge.no_image, charge.amount, charge.basis) == (True, Decimal("3.5"), Entry.ESTIMATE)
    assert "release" not in entries(gen)
    page = client_in.get("/credits/").content.decode()
    assert "paid, no image" in page and "3.5 KIE credits" in page
    card = client_in.get(gen.get_absolute_url()).content.decode()
    assert "result link expired" in card and "HTTP 403" not in card


def test_an_image_that_cannot_be_saved_records_what_the_provider_reported(sandbox, team, user, settings):
    settings.IMAGE_MAX_PIXELS = 100  # any result is over the limit
    gen = create.create(team=team, owner=user, provider="kwiki", model="generate",
                      params={"prompt": "a maple leaf", "quality": "hires"})
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED and gen.error_kind == "download"
    assert "could not be saved" in gen.error_message
    charge = entries(gen)["capture"]
    assert (charge.no_image, charge.amount, charge.basis) == (True, Decimal("2"), Entry.REPORTED)
    assert not gen.images.exists()


def test_a_job_canceled_before_it_was_sent_releases_its_reservation(team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a quiet lane")
    assert gen.cancel() == "canceled"
    e = entries(gen)
    assert set(e) == {"reserve", "release"} and e["release"].note == "canceled before it was sent"


def test_a_job_canceled_after_it_was_sent_that_finished_anyway_is_captured(sandbox, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a long bridge")
    assert step_job(gen) != "not due"  # sent
    gen.refresh_from_db()
    assert gen.cancel() == "tracking"
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED and gen.canceled_at
    assert set(entries(gen)) == {"reserve", "capture"}


def test_ledger_invariants_over_a_mixed_run(sandbox, team, user):
    prompts = ["a red kite", "a green kite", "a kite [402]"]
    gens = [factories.job(team, user, "kwiki", "generate", prompt=p, quality="hires") for p in prompts]
    gens += [factories.job(team, user, "kie", "seedream-v4", prompt="a yellow kite"),
             factories.job(team, user, "kie", "seedream-v4", prompt="a blue kite [fail]"),
             factories.job(team, user, "kvid", "text-to-image", prompt="a paper kite", num_images=2)]
    for g in gens:
        run_tasks(until=g)
    for g in gens:
        kinds = sorted(Entry.objects.filter(generation_uuid=g.uuid).values_list("kind", flat=True))
        if g.status == Generation.SUCCEEDED:
            assert kinds == ["capture", "reserve"], g
        else:
            assert kinds == ["release", "reserve"], g
    captured = Entry.objects.filter(kind=Entry.CAPTURE).values("unit").annotate(total=Sum("amount")).order_by("unit")
    succeeded = Generation.objects.filter(status=Generation.SUCCEEDED)
    expected = {}
    for g in succeeded:
        unit = g.adapter_class.unit.code
        expected[unit] = expected.get(unit, Decimal("0")) + g.credits_used
    assert {r["unit"]: r["total"] for r in captured} == expected
    assert set(expected) == {"kwiki_credit", "kie_credit", "kvid_credit"}  # never one sum across units


def test_a_reported_balance_is_kept_with_its_time(sandbox, team, user):
    gen = factories.job(team, user, "kwiki", "generate", prompt="a tin kettle [402]")
    run_tasks(until=gen)
    assert gen.status == Generation.FAILED and gen.error_kind == "insufficient_credits"
    balance = ProviderBalance.objects.get(team=team, provider="kwiki")
    assert balance.unit == "kwiki_credit" and balance.amount >= 0 and balance.seen_at


def test_entries_outlive_the_user_and_the_generation(team, user):
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a stone wall")
    uuid = gen.uuid
    gen.delete()
    user.delete()
    kept = Entry.objects.get(generation_uuid=uuid, kind=Entry.CAPTURE)
    assert (kept.generation, kept.user, kept.username, kept.amount) == (None, None, "alice", Decimal("3.5"))
    assert kept.who == "alice"


def test_entries_are_append_only(team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a clay pot")
    entry = Entry.objects.get(generation=gen)
    entry.amount = Decimal("0")
    with pytest.raises(ValidationError):
        entry.save()
    with pytest.raises(ValidationError):
        entry.delete()
    assert Entry.objects.get(generation=gen).amount == Decimal("3.5")


def test_an_adjustment_is_signed_and_needs_a_reason(team, user):
    with pytest.raises(ValueError):
        book.adjust(team=team, provider="kie", amount=Decimal("-5"), note="  ", by=user)
    e = book.adjust(team=team, provider="kie", amount=Decimal("-5"), note="refund for a broken batch", by=user)
    assert (e.kind, e.unit, e.amount, e.created_by) == ("adjustment", "kie_credit", Decimal("-5"), user)
