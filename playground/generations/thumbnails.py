"""Thumbnails of results an earlier version saved without one.

A result's thumbnail is made with it, from the same decoded pixels
(pipeline.results.conclude, lib/images.check_image). Earlier versions left it
to a task: the migration that upgrades from them queues
tasks.make_missing_thumbnails, which works through the images without one a
chunk at a time. Until a thumbnail exists, its URL serves the image itself,
not cached (views_media).
"""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile

from playground.lib.images import make_thumbnail

from .models import GenerationImage

log = logging.getLogger("playground.jobs")


def thumbnail_name(file_name: str, extension: str) -> str:
    """generations/<team>/<xx>/<job>-<i>-<tag>.png -> ...-<tag>-thumb.jpg"""
    stem = file_name.rsplit(".", 1)[0]
    return f"{stem}-thumb.{extension}"


def make(generation_id: int, after_id: int = 0) -> str:
    """The missing thumbnails of a job's images. Each is saved, then set
    on its row by a conditional update (thumbnail still empty): if the row
    changed or went away meanwhile (made by another run, the job deleted),
    the file just saved is removed again."""
    made = 0
    for img in GenerationImage.objects.filter(generation_id=generation_id, thumbnail="", pk__gt=after_id) \
            .only("pk", "file"):
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


def backfill(after_id: int = 0, chunk: int = 200) -> int | None:
    """The missing thumbnails of the next chunk of images (by id, after
    after_id). Returns where the next chunk starts, or None when this was
    the last: an image whose thumbnail cannot be made (its file gone) is
    passed over, not tried forever."""
    ids = list(GenerationImage.objects.filter(thumbnail="", pk__gt=after_id).order_by("pk")
               .values_list("generation_id", "pk")[:chunk])
    for generation_id in dict.fromkeys(g for g, _ in ids):
        make(generation_id, after_id=after_id)
    return ids[-1][1] if len(ids) == chunk else None
