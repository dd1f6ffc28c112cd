"""The gallery's "Download selected": the chosen generations' images as
one zip, streamed as it is written."""

from __future__ import annotations

import re
import uuid as uuid_mod
import zipfile

from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required

from .gallery_views import back
from .models import GenerationImage

ZIP_MAX_IMAGES = 200


class _Pipe:
    """A non-seekable writer: zipfile writes into it, the response takes out
    what was written so far."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        if data:
            self.chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks = []
        return out


def zip_name(gen, img, taken: set) -> str:
    """A safe file name from the prompt, unique in the archive."""
    stem = slugify(gen.prompt)[:60].strip("-_") or slugify(gen.model) or "image"
    ext = img.file.name.rsplit(".", 1)[-1].lower() if "." in img.file.name else "bin"
    ext = re.sub(r"[^a-z0-9]", "", ext)[:5] or "bin"
    name, n = f"{stem}.{ext}", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.{ext}"
    taken.add(name)
    return name


def stream_zip(images, chunk_size=64 * 1024):
    """The archive, yielded as it is written (stored: images are compressed)."""
    pipe = _Pipe()
    taken = set()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as zf:
        for img in images:
            try:
                fh = img.file.open("rb")
            except (FileNotFoundError, OSError, ValueError):
                continue  # a file gone from storage: left out
            with fh, zf.open(zip_name(img.generation, img, taken), "w", force_zip64=True) as out:
                while block := fh.read(chunk_size):
                    out.write(block)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


@require_POST
@team_required
def download_zip(request):
    refs = request.POST.getlist("g")[:ZIP_MAX_IMAGES + 1]
    valid = []
    for ref in refs:
        try:
            valid.append(str(uuid_mod.UUID(ref)))
        except (ValueError, TypeError):
            continue
    images = list(GenerationImage.objects.visible_to(request.user, request.team)
                  .filter(generation__uuid__in=valid).select_related("generation")
                  .order_by("-generation__created_at", "generation_id", "index")[:ZIP_MAX_IMAGES + 1])
    if not images:
        raise Http404("Nothing to download")
    if len(images) > ZIP_MAX_IMAGES or len(request.POST.getlist("g")) > ZIP_MAX_IMAGES:
        messages.error(request, f"Too many images for one zip: select at most {ZIP_MAX_IMAGES} images.")
        return redirect(back(request, reverse("gallery")))
    response = StreamingHttpResponse(stream_zip(images), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="generations-{len(images)}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
