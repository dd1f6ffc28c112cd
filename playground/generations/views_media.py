"""Stored files, served: result images and their thumbnails, and input
images (through a generation the viewer may see, directly, or by a signed
expiring URL for providers to fetch), all through file_response; and "use
as input", which turns a result into an input image."""

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.lib.images import THUMB_TYPES
from playground.providers import registry

from .models import GenerationImage, InputImage
from .views_shared import generation_or_404, visible


def _image_or_404(request, uuid):
    return get_object_or_404(visible(request, GenerationImage).select_related("generation"), uuid=uuid)


@team_required
def image(request, uuid):
    img = _image_or_404(request, uuid)
    return file_response(img.file, img.content_type, filename=_image_filename(img, img.file),
                         download=bool(request.GET.get("download")))


@team_required
def image_thumb(request, uuid):
    img = _image_or_404(request, uuid)
    if not img.thumbnail:
        # Not made yet (a task makes it just after the job finished:
        # thumbnails.py): the image itself, not cached, so that the page
        # shows the thumbnail once it exists.
        return file_response(img.file, img.content_type, filename=_image_filename(img, img.file), max_age=0)
    # Thumbnails are JPEG, or WebP where the image has alpha (older ones all WebP).
    thumb_type = THUMB_TYPES.get(img.thumbnail.name.rsplit(".", 1)[-1], "image/webp")
    return file_response(img.thumbnail, thumb_type, filename=_image_filename(img, img.thumbnail))


def _image_filename(img, field) -> str:
    return f"{img.generation.model}-{str(img.generation.uuid)[:8]}-{img.index}.{_extension(field)}"


def _extension(field) -> str:
    return field.name.rsplit(".", 1)[-1] if "." in field.name else "bin"


def file_response(field, content_type, *, filename, download=False, max_age=3600):
    """The one way a stored file is served: its own content type, never
    sniffed, cached privately for max_age seconds, named filename (as an
    attachment when download); a file missing from storage is a 404.
    With object storage and MEDIA_SIGNED_REDIRECTS, the browser is sent to a
    short-lived signed URL of that object instead (checked here first, as
    every image URL is)."""
    if settings.MEDIA_SIGNED_REDIRECTS and getattr(field, "name", "") and hasattr(field.storage, "bucket_name"):
        return _signed_redirect(field, content_type, filename=filename, download=download)
    try:
        fh = field.open("rb")
    except (FileNotFoundError, OSError, ValueError):  # ValueError: no file set
        raise Http404("File missing") from None
    response = FileResponse(fh, content_type=content_type, as_attachment=download, filename=filename)
    response["Cache-Control"] = f"private, max-age={max_age}"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _signed_redirect(field, content_type, *, filename, download):
    from django.http import HttpResponseRedirect
    from django.utils.http import content_disposition_header

    url = field.storage.url(field.name, expire=settings.MEDIA_SIGNED_URL_SECONDS, parameters={
        "ResponseContentType": content_type,
        "ResponseContentDisposition": content_disposition_header(download, filename),
    })
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"  # the signed URL expires: never cache the redirect
    return response


@require_POST
@team_required
def use_as_input(request, uuid):
    """Turn a result into an input image, then pick a model that takes one."""
    img = _image_or_404(request, uuid)
    with img.file.open("rb") as fh:
        data = fh.read()
    try:
        inp = InputImage.from_bytes(team=request.team, owner=request.user, data=data, source=img)
    except Exception as e:  # DownloadError: the stored file is damaged
        messages.error(request, f"That image cannot be used as input: {e}")
        return redirect(img.generation.get_absolute_url())
    query = f"input={inp.uuid}"
    target = request.POST.get("target", "")
    provider, _, model = target.partition(":")
    if (provider, model) in {(p, m) for p, m, _ in image_models()}:
        query += f"&provider={provider}&model={model}"
    return redirect(f"{reverse('playground')}?{query}")


def image_models():
    """(provider key, model key, label) of every model that takes an input image."""
    return [
        (key, mkey, f"{cls.label} - {spec.label}")
        for key, cls in registry.adapter_classes().items()
        for mkey, spec in cls.models.items()
        if spec.image_params()
    ]


@team_required
def generation_input(request, uuid, input_uuid):
    """An input image of a generation the viewer may see (a teammate's shared
    one included: the input itself belongs to its owner). Only an image the
    generation's own parameters name; anything else is a 404."""
    gen = generation_or_404(request, uuid)
    img = next((i for i in gen.input_images().values() if i is not None and i.uuid == input_uuid), None)
    if img is None:
        raise Http404("Not an input of this generation")
    return file_response(img.file, img.content_type, filename=_input_filename(img))


@team_required
def input_image(request, uuid):
    img = get_object_or_404(visible(request, InputImage), uuid=uuid)
    return file_response(img.file, img.content_type, filename=_input_filename(img))


def _input_filename(img) -> str:
    return f"input-{str(img.uuid)[:8]}.{_extension(img.file)}"


def input_image_public(request, token):
    """A signed, expiring URL for one input image, for providers to fetch.
    No login: the signature is the permission (RELIABILITY 6, 8)."""
    try:
        ref = signing.loads(token, salt="input-image", max_age=settings.INPUT_URL_TTL_SECONDS)
    except signing.BadSignature:
        raise Http404("Link expired or invalid") from None
    img = get_object_or_404(InputImage, uuid=ref)
    return file_response(img.file, img.content_type, filename=_input_filename(img), max_age=300)
