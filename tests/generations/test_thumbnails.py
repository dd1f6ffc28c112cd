"""A result's thumbnail is made with it, from the same decoded pixels, also
when other jobs' steps wait in the same batch (made later, it cost a second
decode). Images an earlier version saved without a thumbnail (it left them
to a task when steps waited) still get one: their queued task runs, the
thumbnail URL serves the image itself, uncached, until then, a lost task is
queued again by the sweep, and a job deleted meanwhile leaves no file."""

from datetime import timedelta
import io
import os

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from PIL import Image
import pytest

from playground.generations import thumbnails
from playground.generations.pipeline import sweep
from playground.generations.models import Generation, GenerationImage
from playground.generations.tasks import enqueue_now_or_on_commit, thumbnail_task

from tests import factories
from tests.generations.test_worker_order import run_one_task
from tests.helpers import advance_clock, run_tasks

THUMBS = "playground.generations.tasks.make_thumbnails"


def run_together(team, user, *prompts):
    """Jobs run task by task until all have succeeded, their steps in batches."""
    gens = [factories.job(team, user, "kie", "seedream-v4", prompt=p) for p in prompts]
    for _ in range(40):
        run_one_task()
        if not Generation.objects.filter(pk__in=[g.pk for g in gens], status__in=Generation.ACTIVE).exists():
            break
        advance_clock()
    for gen in gens:
        gen.refresh_from_db()
        assert gen.status == Generation.SUCCEEDED, gen.error_message
    return gens


def finish_without_thumbnails(team, user, prompt="a lighthouse at dusk"):
    """A job stored as an earlier version stored it while other steps
    waited: its image without a thumbnail, a thumbnail task queued."""
    (gen,) = run_together(team, user, prompt)
    img = gen.images.get()
    default_storage.delete(img.thumbnail.name)
    GenerationImage.objects.filter(pk=img.pk).update(thumbnail="")
    enqueue_now_or_on_commit(thumbnail_task(), gen.pk)
    return gen


def thumbnail_rows(gen):
    return DBTaskResult.objects.filter(task_path=THUMBS, args_kwargs__args__0=gen.pk)


def files_on_disk():
    root = settings.MEDIA_ROOT
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.django_db
def test_jobs_stepped_together_finish_with_their_thumbnails(client_in, team, user, sandbox):
    gens = run_together(team, user, "a lighthouse at dusk", "a windmill at dawn", "a calm sea")
    for gen in gens:
        img = gen.images.get()
        assert img.thumbnail.name.endswith("-thumb.jpg") and img.thumbnail.name.startswith(img.file.name.rsplit(".", 1)[0])
        r = client_in.get(reverse("image_thumb", args=[img.uuid]))
        assert r["Content-Type"] == "image/jpeg" and r["Cache-Control"] == "private, max-age=3600"
        thumb = Image.open(io.BytesIO(b"".join(r.streaming_content)))
        assert max(thumb.size) == 512 and thumb.format == "JPEG"
        assert not thumbnail_rows(gen).exists()  # no task of its own


@pytest.mark.django_db
def test_an_image_saved_without_its_thumbnail_serves_itself_until_its_queued_task_runs(client_in, team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    img = gen.images.get()
    assert img.thumbnail.name == "" and default_storage.exists(img.file.name)
    row = thumbnail_rows(gen).get(status="READY")
    assert row.priority == settings.TASK_PRIORITY_BACKGROUND < 0

    # Meanwhile the card's thumbnail URL serves the image itself, not cached.
    r = client_in.get(reverse("image_thumb", args=[img.uuid]))
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    assert r["Cache-Control"] == "private, max-age=0"
    assert Image.open(io.BytesIO(b"".join(r.streaming_content))).size == (img.width, img.height)

    run_tasks()
    img.refresh_from_db()
    assert img.thumbnail.name.endswith("-thumb.jpg") and img.thumbnail.name.startswith(img.file.name.rsplit(".", 1)[0])
    r = client_in.get(reverse("image_thumb", args=[img.uuid]))
    assert r["Content-Type"] == "image/jpeg" and r["Cache-Control"] == "private, max-age=3600"
    assert thumbnail_rows(gen).get().status == "SUCCESSFUL"


@pytest.mark.django_db
def test_a_lost_thumbnail_task_is_queued_again_by_the_sweep(team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    thumbnail_rows(gen).delete()  # lost (a worker killed while running it, say)
    sweep.sweep()
    assert not thumbnail_rows(gen).exists()  # not overdue yet
    gen.images.update(created_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS + 1))
    sweep.sweep()
    assert thumbnail_rows(gen).get().status == "READY"
    sweep.sweep()  # queued already: not twice
    assert thumbnail_rows(gen).count() == 1
    run_tasks()
    assert gen.images.get().thumbnail.name.endswith("-thumb.jpg")


@pytest.mark.django_db
def test_a_thumbnail_task_left_running_by_a_dead_worker_is_marked_failed(team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    long_ago = timezone.now() - timedelta(seconds=11 * settings.JOB_LEASE_SECONDS)
    thumbnail_rows(gen).update(status="RUNNING", started_at=long_ago)
    sweep.sweep()
    assert thumbnail_rows(gen).get().status == "FAILED"


@pytest.mark.django_db
def test_a_job_deleted_before_its_thumbnail_leaves_no_file(client_in, team, user, sandbox,
                                                           django_capture_on_commit_callbacks):
    gen = finish_without_thumbnails(team, user)
    assert any(f.startswith("generations/") for f in files_on_disk())
    with django_capture_on_commit_callbacks(execute=True):
        r = client_in.post(reverse("delete_generation", args=[gen.uuid]))
    assert r.status_code == 302
    run_tasks()
    assert thumbnail_rows(gen).get().return_value == "0 thumbnail(s)"
    assert not any(gen.uuid.hex in f for f in files_on_disk())


@pytest.mark.django_db
def test_a_thumbnail_made_as_its_job_is_deleted_is_removed_again(team, user, sandbox, monkeypatch):
    gen = finish_without_thumbnails(team, user)
    real = thumbnails.make_thumbnail

    def deleted_meanwhile(data, *a, **kw):
        made = real(data, *a, **kw)
        Generation.objects.filter(pk=gen.pk).delete()  # the row goes while the thumbnail is being made
        return made

    monkeypatch.setattr(thumbnails, "make_thumbnail", deleted_meanwhile)
    assert thumbnails.make(gen.pk) == "0 thumbnail(s)"
    assert not any(gen.uuid.hex in f and f.endswith("-thumb.jpg") for f in files_on_disk())


@pytest.mark.django_db
def test_a_result_whose_file_is_gone_gets_no_thumbnail_and_no_error(team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    img = gen.images.get()
    default_storage.delete(img.file.name)
    assert thumbnails.make(gen.pk) == "0 thumbnail(s)"
    img.refresh_from_db()
    assert img.thumbnail.name == ""
    # Its task ran to its end: the sweep does not queue it again and again.
    run_tasks()
    gen.images.update(created_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS + 1))
    sweep.sweep()
    assert thumbnail_rows(gen).get().status == "SUCCESSFUL"
