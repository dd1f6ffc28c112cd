"""A result's thumbnail is made with it, from the same decoded pixels, also
for jobs a worker claims and steps together (made later, it cost a second
decode). Images an earlier version saved without a thumbnail still get one:
the upgrade's migration (generations 0010) queues the side task
make_missing_thumbnails, which works through them a chunk at a time (by id,
each chunk queuing the next) and passes over an image whose file is gone;
until then the thumbnail URL serves the image itself, uncached, and a job
deleted meanwhile leaves no file."""

from importlib import import_module
import io
import os

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from django_tasks_db.models import DBTaskResult
from PIL import Image
import pytest

from playground.generations import thumbnails
from playground.generations.models import Generation, GenerationImage

from tests import factories
from tests.helpers import run_side_tasks, run_tasks

BACKFILL = "playground.generations.tasks.make_missing_thumbnails"
MIGRATION = import_module("playground.generations.migrations.0010_queue_on_the_row")


def saved_without_thumbnails(team, user, prompt="a lighthouse at dusk", images=1):
    """A job stored as an earlier version stored it while other steps
    waited: its images without a thumbnail."""
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt=prompt, images=images)
    for img in gen.images.all():
        default_storage.delete(img.thumbnail.name)
    gen.images.update(thumbnail="")
    return gen


def upgrade():
    """The upgrade's migration step that hands old images to the side task."""
    MIGRATION.queue_missing_thumbnails(apps, None)


def backfill_rows():
    return DBTaskResult.objects.filter(task_path=BACKFILL).order_by("enqueued_at")


def files_on_disk():
    root = settings.MEDIA_ROOT
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.django_db
def test_jobs_stepped_together_finish_with_their_thumbnails(client_in, team, user, sandbox):
    gens = [factories.job(team, user, "kie", "seedream-v4", prompt=p)
            for p in ("a lighthouse at dusk", "a windmill at dawn", "a calm sea")]
    for gen in gens:  # one worker claims them together, step after step
        run_tasks(until=gen)
        assert gen.status == Generation.SUCCEEDED, gen.error_message
        img = gen.images.get()
        assert img.thumbnail.name.endswith("-thumb.jpg") and img.thumbnail.name.startswith(img.file.name.rsplit(".", 1)[0])
        r = client_in.get(reverse("image_thumb", args=[img.uuid]))
        assert r["Content-Type"] == "image/jpeg" and r["Cache-Control"] == "private, max-age=3600"
        thumb = Image.open(io.BytesIO(b"".join(r.streaming_content)))
        assert max(thumb.size) == 512 and thumb.format == "JPEG"
    assert not DBTaskResult.objects.exists()  # no task of their own
    upgrade()
    assert not backfill_rows().exists()  # every image has its thumbnail: nothing to queue


@pytest.mark.django_db
def test_an_image_saved_without_its_thumbnail_serves_itself_until_the_backfill_runs(client_in, team, user):
    gen = saved_without_thumbnails(team, user)
    img = gen.images.get()
    assert img.thumbnail.name == "" and default_storage.exists(img.file.name)
    upgrade()
    [row] = backfill_rows()
    assert row.status == "READY" and row.task_result.args == [0]

    # Meanwhile the card's thumbnail URL serves the image itself, not cached.
    r = client_in.get(reverse("image_thumb", args=[img.uuid]))
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    assert r["Cache-Control"] == "private, max-age=0"
    assert Image.open(io.BytesIO(b"".join(r.streaming_content))).size == (img.width, img.height)

    run_side_tasks()
    img.refresh_from_db()
    assert img.thumbnail.name.endswith("-thumb.jpg") and img.thumbnail.name.startswith(img.file.name.rsplit(".", 1)[0])
    r = client_in.get(reverse("image_thumb", args=[img.uuid]))
    assert r["Content-Type"] == "image/jpeg" and r["Cache-Control"] == "private, max-age=3600"
    [row] = backfill_rows()
    assert row.status == "SUCCESSFUL"


@pytest.mark.django_db
def test_the_backfill_works_a_chunk_at_a_time_each_chunk_queuing_the_next(team, user, monkeypatch):
    gens = [saved_without_thumbnails(team, user, prompt=f"a harbour {i}", images=2) for i in range(2)]
    done = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a harbour with its thumbnail")
    done_thumb = done.images.get().thumbnail.name
    ids = sorted(GenerationImage.objects.filter(thumbnail="").values_list("pk", flat=True))
    assert len(ids) == 4
    real = thumbnails.backfill
    seen = []

    def in_threes(after_id=0):
        seen.append(after_id)
        return real(after_id, chunk=3)

    monkeypatch.setattr(thumbnails, "backfill", in_threes)
    upgrade()
    run_side_tasks()
    assert seen == [0, ids[2]]  # a full chunk queued the next, from where it stopped; the short one did not
    rows = list(backfill_rows())
    assert [(r.status, r.task_result.args) for r in rows] == [("SUCCESSFUL", [0]), ("SUCCESSFUL", [ids[2]])]
    assert not GenerationImage.objects.filter(thumbnail="").exists()
    for gen in gens:
        assert all(i.thumbnail.name.endswith("-thumb.jpg") for i in gen.images.all())
    assert done.images.get().thumbnail.name == done_thumb  # an image with its thumbnail is left alone


@pytest.mark.django_db
def test_a_job_deleted_before_its_thumbnail_leaves_no_file(client_in, team, user,
                                                           django_capture_on_commit_callbacks):
    gen = saved_without_thumbnails(team, user)
    upgrade()
    assert any(gen.uuid.hex in f for f in files_on_disk())
    with django_capture_on_commit_callbacks(execute=True):
        r = client_in.post(reverse("delete_generation", args=[gen.uuid]))
    assert r.status_code == 302
    run_side_tasks()
    [row] = backfill_rows()
    assert row.status == "SUCCESSFUL"
    assert not any(gen.uuid.hex in f for f in files_on_disk())


@pytest.mark.django_db
def test_a_thumbnail_made_as_its_job_is_deleted_is_removed_again(team, user, monkeypatch):
    gen = saved_without_thumbnails(team, user)
    real = thumbnails.make_thumbnail

    def deleted_meanwhile(data, *a, **kw):
        made = real(data, *a, **kw)
        Generation.objects.filter(pk=gen.pk).delete()  # the row goes while the thumbnail is being made
        return made

    monkeypatch.setattr(thumbnails, "make_thumbnail", deleted_meanwhile)
    assert thumbnails.make(gen.pk) == "0 thumbnail(s)"
    assert not any(gen.uuid.hex in f and f.endswith("-thumb.jpg") for f in files_on_disk())


@pytest.mark.django_db
def test_an_image_whose_file_is_gone_is_passed_over_not_tried_forever(team, user, monkeypatch):
    gone = saved_without_thumbnails(team, user, prompt="a lost harbour")
    kept = saved_without_thumbnails(team, user, prompt="a kept harbour")
    default_storage.delete(gone.images.get().file.name)
    real = thumbnails.backfill
    monkeypatch.setattr(thumbnails, "backfill", lambda after_id=0: real(after_id, chunk=1))
    upgrade()
    run_side_tasks()
    assert gone.images.get().thumbnail.name == ""  # its image is gone: no thumbnail, no error
    assert kept.images.get().thumbnail.name.endswith("-thumb.jpg")  # the next one still got its own
    ids = [gone.images.get().pk, kept.images.get().pk]
    # One chunk each, then an empty one that ends the backfill: the lost image is not tried again.
    assert [(r.status, r.task_result.args) for r in backfill_rows()] == [
        ("SUCCESSFUL", [0]), ("SUCCESSFUL", [ids[0]]), ("SUCCESSFUL", [ids[1]])]
    assert not DBTaskResult.objects.ready().exists()
