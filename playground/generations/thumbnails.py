"""Thumbnails of results an earlier version saved without one.

A result's thumbnail is made with it, from the same decoded pixels
(pipeline.results.conclude, lib/images.check_image). Earlier versions left it to a task
of low priority (TASK_PRIORITY_BACKGROUND) when other jobs' steps waited:
that task (tasks.make_thumbnails) still runs for the rows an upgrade finds
queued, and the recovery sweep queues it again for an image of the last day
still without one. Until a thumbnail exists, its URL serves the image
itself, not cached (views.image_thumb).
"""

from __future__ import annotations

from datetime import timedelta
import logging

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from playground.lib.images import make_thumbnail

from .models import GenerationImage

log = logging.getLogger("playground.jobs")

# The sweep looks at images this old and younger than a day: an image whose
# thumbnail cannot be made (its file gone) is not tried again forever.
SWEEP_WINDOW = timedelta(days=1)


def thumbnail_name(file_name: str, extension: str) -> str:
    """generations/<team>/<xx>/<job>-<i>-<tag>.png -> ...-<tag>-thumb.jpg"""
    stem = file_name.rsplit(".", 1)[0]
    return f"{stem}-thumb.{extension}"


def make(generation_id: int) -> str:
    """The missing thumbnails of a job's images. Each is saved, then set
    on its row by a conditional update (thumbnail still empty): if the row
    changed or went away meanwhile (made by another run, the job deleted),
    the file just saved is removed again."""
    made = 0
    for img in GenerationImage.objects.filter(generation_id=generation_id, thumbnail="").only("pk", "file"):
        try:
            with img.file.open("rb") as fh:
                data = fh.read()
            thumb, ext = make_thumbnail(data)
        except Exception:  # a file gone from storage, say: the image itself is still served
            log.exception("image %s: could not make its thumbnail", img.pk)
            continue
        storage = img.file.storage
        name = storage.save(thumbnail_name(img.file.name, ext), ContentFile(thumb))
        if GenerationImage.objects.filter(pk=img.pk, thumbnail="").update(thumbnail=name):
            made += 1
        else:
            storage.delete(name)
    return f"{made} thumbnail(s)"


def sweep() -> int:
    """Queue again the thumbnails that should exist by now (their image
    saved over JOB_SWEEP_GRACE_SECONDS ago, within a day) and have no task
    waiting in the queue: its task was lost (a worker killed while running
    it, say). One that ran to its end and could not make it (its image's
    file gone) is not tried again. Returns how many jobs were queued."""
    from .tasks import enqueue_now_or_on_commit, make_thumbnails, ready_task_args, thumbnail_task

    now = timezone.now()
    missing = (
        GenerationImage.objects.filter(thumbnail="", created_at__lt=now - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS),
                                       created_at__gt=now - SWEEP_WINDOW)
        .order_by().values_list("generation_id", flat=True).distinct()
    )
    ids = list(missing[:500])
    queued = ready_task_args(make_thumbnails, ids, or_successful=True)
    lost = [i for i in ids if i not in queued]
    for gid in lost:
        enqueue_now_or_on_commit(thumbnail_task(), gid)
    if lost:
        log.info("sweep: queued the thumbnails of %d job(s) again", len(lost))
    return len(lost)

