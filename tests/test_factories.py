"""The finished-job factory stores what the pipeline stores: a job run
against the sandbox and one made by factories.finished_job have the same
state, the same ledger entries and images of the same shape (files and
thumbnails in storage). If the pipeline changes what it writes, this
fails, and the factory follows."""

import hashlib

from django.core.files.storage import default_storage

from playground.generations.models import Generation
from playground.ledger.models import Entry

from tests import factories
from tests.helpers import run_tasks

FIELDS = ("status", "phase", "wait_reason", "lease_until", "error_kind", "error_message", "endpoint_source",
          "attempts", "credits_used", "cost_estimate", "visibility", "canceled_at")


def shape(gen: Generation) -> dict:
    gen.refresh_from_db()
    entries = sorted((e.kind, e.amount, e.unit, e.basis, e.estimate, e.reported, e.no_image, e.username)
                     for e in Entry.objects.filter(generation=gen))
    images = []
    for img in gen.images.order_by("index"):
        data = default_storage.open(img.file.name).read()
        assert hashlib.sha256(data).hexdigest() == img.sha256 and len(data) == img.bytes
        assert default_storage.exists(img.thumbnail.name) and img.thumbnail.name != img.file.name
        assert img.file.name.startswith(f"generations/{gen.team.uuid}/{gen.uuid.hex[:2]}/{gen.uuid.hex}-{img.index}-")
        images.append((img.index, img.content_type, img.file.name.rsplit(".", 1)[1],
                       img.thumbnail.name.rsplit(".", 1)[1], img.width > 0 and img.height > 0))
    return {"job": {f: getattr(gen, f) for f in FIELDS}, "done": (bool(gen.submitted_at), bool(gen.finished_at),
                                                                 bool(gen.provider_job_id)),
            "entries": entries, "images": images}


def test_a_finished_job_is_stored_as_the_pipeline_stores_one(sandbox, team, user):
    ran = factories.job(team, user, "kie", "seedream-v4", prompt="a kite, run")
    run_tasks(until=ran)
    made = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a kite, made")
    assert shape(made) == shape(ran)
    assert shape(made)["job"]["status"] == Generation.SUCCEEDED and len(shape(made)["images"]) == 1


def test_a_reported_charge_and_several_images(team, user):
    from decimal import Decimal

    gen = factories.finished_job(team, user, "kvid", "text-to-image", prompt="jars", num_images=2, images=2,
                                 credits=Decimal("15"))
    s = shape(gen)
    assert [i[0] for i in s["images"]] == [0, 1]
    assert [e[:4] for e in s["entries"]] == [("capture", Decimal("15"), "kvid_credit", Entry.REPORTED),
                                             ("reserve", gen.cost_estimate, "kvid_credit", "")]
    assert gen.credits_used == Decimal("15")


def test_a_failed_job_is_released(team, user):
    gen = factories.failed_job(team, user, "kie", "seedream-v4", prompt="a kite", message="No kite today.")
    assert (gen.status, gen.error_message) == (Generation.FAILED, "No kite today.")
    assert sorted(Entry.objects.filter(generation=gen).values_list("kind", flat=True)) == ["release", "reserve"]
