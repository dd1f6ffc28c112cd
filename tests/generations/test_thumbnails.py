"""When other jobs' steps wait (a step runs in a batch), a result's thumbnail
is made after its job has finished, by a task that waits for every due step
(issue 10: it was half the CPU of storing a result); a job that finishes
alone gets it at once. Until then the thumbnail URL serves the image itself, uncached; a
lost thumbnail task is queued again by the sweep; a job deleted meanwhile
leaves no file behind."""

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

from playground.generations import jobs, thumbnails
from playground.generations.models import Generation, GenerationImage

from tests import factories
from tests.generations.test_worker_order import run_one_task
from tests.helpers import advance_clock, run_tasks

THUMBS = "playground.generations.tasks.make_thumbnails"


def finish_without_thumbnails(team, user, prompt="a lighthouse at dusk"):
    """A job run until it has succeeded, its thumbnail task still queued:
    run with another job, their steps in one batch."""
    gen = factories.job(team, user, "kie", "seedream-v4", prompt=prompt)
    factories.job(team, user, "kie", "seedream-v4", prompt=f"{prompt}, again")
    for _ in range(20):
        run_one_task()
        gen.refresh_from_db()
        if not gen.is_active:
            break
        advance_clock()
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    return gen


def thumbnail_rows(gen):
    return DBTaskResult.objects.filter(task_path=THUMBS, args_kwargs__args__0=gen.pk)


def files_on_disk():
    root = settings.MEDIA_ROOT
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.django_db
def test_the_job_finishes_with_its_image_and_the_thumbnail_follows(client_in, team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    img = gen.images.get()
    assert img.thumbnail.name == "" and default_storage.exists(img.file.name)
    # One thumbnail task, queued after every due step (lower priority than a poll's 0).
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
    thumb = Image.open(io.BytesIO(b"".join(r.streaming_content)))
    assert max(thumb.size) == 512 and thumb.format == "JPEG"
    assert thumbnail_rows(gen).get().status == "SUCCESSFUL"


@pytest.mark.django_db
def test_a_due_poll_runs_before_a_waiting_thumbnail(team, user, sandbox):
    first = finish_without_thumbnails(team, user, "a lighthouse at dusk")
    second = factories.job(team, user, "kie", "seedream-v4", prompt="a windmill at dawn")
    run_one_task()  # the submit (urgent) goes first
    second.refresh_from_db()
    assert second.status == Generation.RUNNING
    advance_clock()
    run_one_task()  # the due poll, not the thumbnail queued before it
    second.refresh_from_db()
    assert second.status == Generation.SUCCEEDED
    assert first.images.get().thumbnail.name == ""
    assert second.images.get().thumbnail.name  # it finished alone: its thumbnail at once, no task
    assert not thumbnail_rows(second).exists()
    run_tasks()
    assert all(i.thumbnail.name for i in GenerationImage.objects.all())


@pytest.mark.django_db
def test_a_lost_thumbnail_task_is_queued_again_by_the_sweep(team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    thumbnail_rows(gen).delete()  # lost (a worker killed while running it, say)
    jobs.sweep()
    assert not thumbnail_rows(gen).exists()  # not overdue yet
    gen.images.update(created_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS + 1))
    jobs.sweep()
    assert thumbnail_rows(gen).get().status == "READY"
    jobs.sweep()  # queued already: not twice
    assert thumbnail_rows(gen).count() == 1
    run_tasks()
    assert gen.images.get().thumbnail.name.endswith("-thumb.jpg")


@pytest.mark.django_db
def test_a_thumbnail_task_left_running_by_a_dead_worker_is_marked_failed(team, user, sandbox):
    gen = finish_without_thumbnails(team, user)
    long_ago = timezone.now() - timedelta(seconds=11 * settings.JOB_LEASE_SECONDS)
    thumbnail_rows(gen).update(status="RUNNING", started_at=long_ago)
    jobs.sweep()
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
    jobs.sweep()
    assert thumbnail_rows(gen).get().status == "SUCCESSFUL"
