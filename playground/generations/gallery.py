"""The gallery (/generations/): the viewer's generations, or the team's
shared ones, newest first, with filters in the URL, keyset pagination on
(created_at, id) and the per-item actions (favorite, share, delete, zip).

Pages never COUNT or OFFSET: a page is the rows older than the cursor of the
last card shown (`?after=<created_at>_<id>`), so generations created while
someone scrolls neither shift nor repeat what comes next. A page costs the
same few queries whatever its size: the rows (with their owner), their
images (one prefetch) and the viewer's favorites among them (one query)."""

from __future__ import annotations

import logging

from datetime import datetime, time, timedelta, timezone as dt_timezone
import re
from urllib.parse import urlencode
import uuid as uuid_mod
import zipfile

from django import forms
from django.contrib import messages
from django.db import connection, transaction
from django.db.models import Prefetch, Q
from django.db.models.fields.json import KT
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.providers import registry

from .models import Favorite, Generation, GenerationImage

TEMPLATE = "generations/gallery.html"
PAGE_SIZE = 24
ZIP_MAX_IMAGES = 200
SEARCH_MAX = 200


# --- filters -------------------------------------------------------------------


def _provider_choices():
    return [("", "Any provider")] + [(key, cls.label) for key, cls in registry.adapter_classes().items()]


def _model_choices():
    out = [("", "Any model")]
    seen = set()
    for key, cls in registry.adapter_classes().items():
        for mkey, spec in cls.models.items():
            if mkey not in seen:
                seen.add(mkey)
                out.append((mkey, f"{cls.label} - {spec.label}"))
    return out


class GalleryFilters(forms.Form):
    """The filters of the gallery's URL. A bad value is a field error shown
    above the list; the other filters still apply."""

    scope = forms.ChoiceField(choices=[("mine", "Mine"), ("team", "Team")], required=False)
    member = forms.CharField(max_length=150, required=False, help_text="A teammate's username (team scope).")
    provider = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False)
    status = forms.ChoiceField(choices=[("", "Any status")] + Generation.STATUSES, required=False)
    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")
    favorites = forms.BooleanField(required=False, label="Favorites only")
    has_input = forms.BooleanField(required=False, label="Took an input image")
    q = forms.CharField(max_length=SEARCH_MAX, required=False, label="Search prompts",
                        error_messages={"max_length": f"Search for at most {SEARCH_MAX} characters."})

    FIELD_PARAMS = {"date_from": "from", "date_to": "to"}  # URL name of a field, where it differs

    def __init__(self, data, **kwargs):
        # The URL names "from" and "to" (Python keywords, so not field names).
        data = data or {}
        mapped = {}
        for name in self.base_fields:
            param = self.FIELD_PARAMS.get(name, name)
            if param in data:
                mapped[name] = data.get(param)
        super().__init__(mapped, **kwargs)
        self.fields["provider"].choices = _provider_choices()
        self.fields["model"].choices = _model_choices()
        for name, field in self.fields.items():
            field.widget.attrs.setdefault("id", f"f-{name}")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def value(self, name):
        """The valid value of a filter (None when it is missing or bad)."""
        return self.cleaned_data.get(name) if hasattr(self, "cleaned_data") else None

    def query(self, **extra) -> str:
        """The URL query of the filters as given (the bad ones dropped)."""
        params = {}
        for name in self.base_fields:
            value = self.value(name)
            if value in (None, "", False):
                continue
            if value is True:
                value = "1"
            params[self.FIELD_PARAMS.get(name, name)] = str(value)
        params.update({k: v for k, v in extra.items() if v})
        return urlencode(params)


# --- the cursor --------------------------------------------------------------------


def cursor_of(gen) -> str:
    """`<created_at in UTC, ISO 8601, microseconds>_<id>`: the position after this card."""
    at = gen.created_at.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{at}_{gen.pk}"


CURSOR_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)_(\d{1,19})")


def parse_cursor(text: str):
    """(created_at, id) from a cursor, or None when it is not one."""
    m = CURSOR_RE.fullmatch(text or "")
    if not m:
        return None
    try:
        at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at, int(m.group(2))


def _older_than(qs, cursor):
    at, pk = cursor
    # created_at <= at is the range an index can use; the OR breaks ties by id.
    return qs.filter(created_at__lte=at).filter(Q(created_at__lt=at) | Q(pk__lt=pk))


# --- the query ---------------------------------------------------------------------


def search(qs, text: str):
    """Generations whose prompt has every word of text: PostgreSQL full-text
    search (the GIN index of migration 0004 covers the expression); elsewhere,
    or when every word is one full-text search ignores ("the", "a"), a
    case-insensitive match of each word."""
    words = text.split()
    if not words:
        return qs
    if connection.vendor == "postgresql" and _has_lexemes(" ".join(words)):
        from django.contrib.postgres.search import SearchQuery, SearchVector

        return qs.annotate(prompt_search=SearchVector(KT("params__prompt"), config="english")).filter(
            prompt_search=SearchQuery(" ".join(words), config="english", search_type="plain"))
    for word in words:
        qs = qs.filter(params__prompt__icontains=word)
    return qs


def _has_lexemes(text: str) -> bool:
    """Whether PostgreSQL's English parser keeps any word of text (a query
    of stop words alone would match nothing)."""
    with connection.cursor() as c:
        c.execute("SELECT numnode(plainto_tsquery('english'::regconfig, %s))", [text])
        return bool(c.fetchone()[0])


def filtered(request, form):
    """The generations the filters select, for this viewer, newest first."""
    scope = form.value("scope") or "mine"
    if scope == "team":
        qs = Generation.objects.visible_to(request.user, request.team)
        member = form.value("member")
        if member:
            qs = qs.filter(owner__username=member)
    else:
        qs = Generation.objects.owned_by(request.user, request.team)
    if form.value("provider"):
        qs = qs.filter(provider=form.value("provider"))
    if form.value("model"):
        qs = qs.filter(model=form.value("model"))
    if form.value("status"):
        qs = qs.filter(status=form.value("status"))
    zone = request.team.zone
    if form.value("date_from"):
        qs = qs.filter(created_at__gte=datetime.combine(form.value("date_from"), time.min, tzinfo=zone))
    if form.value("date_to"):
        qs = qs.filter(created_at__lt=datetime.combine(form.value("date_to") + timedelta(days=1), time.min,
                                                       tzinfo=zone))
    if form.value("favorites"):
        qs = qs.filter(pk__in=Favorite.objects.filter(user=request.user).values("generation_id"))
    if form.value("has_input"):
        qs = qs.filter(has_input=True)
    if form.value("q"):
        qs = search(qs, form.value("q"))
    return qs.order_by("-created_at", "-pk")


def page_of(request, form, cursor, size=None):
    """(the cards of one page, the cursor after it or None at the end).
    Three queries whatever the size: rows with owners, images, favorites."""
    size = size or PAGE_SIZE
    qs = filtered(request, form)
    if cursor:
        qs = _older_than(qs, cursor)
    rows = list(qs.select_related("owner").prefetch_related(
        Prefetch("images", queryset=GenerationImage.objects.order_by("index")))[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    starred = set(Favorite.objects.filter(user=request.user, generation__in=[g.pk for g in rows])
                  .values_list("generation_id", flat=True)) if rows else set()
    for gen in rows:
        _decorate(request, gen, starred)
    return rows, (cursor_of(rows[-1]) if more else None)


def _decorate(request, gen, starred):
    imgs = list(gen.images.all())
    gen.first_image = imgs[0] if imgs else None
    gen.more_images = max(len(imgs) - 1, 0)
    gen.starred = gen.pk in starred
    gen.mine = gen.owner_id == request.user.pk
    # Someone else's adult result is blurred until the viewer reveals it.
    gen.blurred = gen.is_adult and not gen.mine


@team_required
def gallery(request):
    form = GalleryFilters(request.GET)
    form.is_valid()  # the valid filters apply; the errors are shown
    cursor = None
    ref = request.GET.get("after", "")
    if ref:
        cursor = parse_cursor(ref[:64])
        if cursor is None:
            form.add_error(None, "That page link is not valid: showing the newest generations.")
    scope = form.value("scope") or "mine"
    members = _members(request) if scope == "team" else []
    if members and form.value("member") and form.value("member") not in members:
        form.add_error("member", f"Nobody called \"{form.value('member')}\" is in this team.")
    cards, after = page_of(request, form, cursor)
    context = {
        "form": form, "cards": cards, "scope": scope, "zone": request.team.zone,
        "older_url": f"{reverse('gallery')}?{form.query(after=after)}" if after else "",
        "here": _here(request), "query": form.query(), "deep": bool(cursor),
        "newest_url": f"{reverse('gallery')}?{form.query()}",
        "members": members,
    }
    if request.htmx and cursor:
        return render(request, f"{TEMPLATE}#page", context)
    return render(request, TEMPLATE, context)


def _here(request) -> str:
    """This page's address, for forms to come back to: for cards loaded by
    scrolling, the page the browser shows (not the fragment's URL)."""
    from urllib.parse import urlsplit

    if request.htmx and request.htmx.current_url:
        parts = urlsplit(request.htmx.current_url)
        if parts.path == reverse("gallery"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


def _members(request):
    return list(request.team.memberships.select_related("user").order_by("user__username")
                .values_list("user__username", flat=True))


# --- actions -----------------------------------------------------------------------


def _visible_or_404(request, uuid):
    return get_object_or_404(Generation.objects.visible_to(request.user, request.team).select_related("owner"),
                             uuid=uuid)


def _own_or_404(request, uuid):
    """What only the owner may change: a teammate's shared item is 404 here."""
    return get_object_or_404(Generation.objects.owned_by(request.user, request.team).select_related("owner"),
                             uuid=uuid)


def _back(request, default):
    """Where a form posted without JS goes back to: its `next` when it is this site's."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@require_POST
@team_required
def toggle_favorite(request, uuid):
    gen = _visible_or_404(request, uuid)
    removed, _ = Favorite.objects.filter(user=request.user, generation=gen).delete()
    if not removed:
        Favorite.objects.get_or_create(user=request.user, generation=gen)
    gen.starred = not removed
    if request.htmx:
        return render(request, f"{TEMPLATE}#star", {"gen": gen, "here": _back(request, "")})
    return redirect(_back(request, reverse("gallery")))


@require_POST
@team_required
def set_visibility(request, uuid):
    gen = _own_or_404(request, uuid)
    value = request.POST.get("visibility", "")
    if value not in (Generation.SHARED, Generation.PRIVATE):
        if request.htmx:
            return HttpResponse("Visibility must be team or private.", status=400)
        messages.error(request, "Visibility must be \"team\" (shared) or \"private\".")
        return redirect(_back(request, reverse("gallery")))
    Generation.objects.filter(pk=gen.pk).update(visibility=value)
    gen.visibility = value
    gen.mine = True
    if request.htmx:
        return render(request, f"{TEMPLATE}#share", {"gen": gen, "here": _back(request, "")})
    messages.success(request, "Shared with the team." if value == Generation.SHARED else "Now private to you.")
    return redirect(_back(request, reverse("gallery")))


@team_required
def delete_generation(request, uuid):
    gen = _own_or_404(request, uuid)
    if gen.is_active:
        messages.error(request, "This job is still running: cancel it or wait for it to finish, then delete it.")
        return redirect(gen.get_absolute_url())
    if request.method != "POST":
        return render(request, "generations/delete.html",
                      {"gen": gen, "image": gen.images.order_by("index").first(),
                       "back": _back(request, reverse("gallery"))})
    files = []
    with transaction.atomic():
        # Read under a lock: a thumbnail made meanwhile (thumbnails.make) is
        # either among the files or finds its row gone and removes its file.
        for img in gen.images.select_for_update():
            files += [f for f in (img.file, img.thumbnail) if f]
        # Ledger entries keep their lines (Entry.generation is SET_NULL; the uuid stays).
        gen.delete()
    for f in files:
        transaction.on_commit(lambda f=f: _delete_file(f))
    messages.success(request, "Generation deleted. Its credit history stays on the Credits page.")
    target = _back(request, reverse("gallery"))
    if target.startswith(gen.get_absolute_url()):
        target = reverse("gallery")
    return redirect(target)


def _delete_file(field):
    """Remove a deleted generation's file from storage (local or object
    storage); a failure leaves an orphan file, never an error page."""
    try:
        field.storage.delete(field.name)
    except Exception:  # OSError locally, botocore's ClientError on S3
        logging.getLogger("playground.jobs").warning("could not delete %s from storage", field.name, exc_info=True)


# --- zip ---------------------------------------------------------------------------


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
        return redirect(_back(request, reverse("gallery")))
    response = StreamingHttpResponse(stream_zip(images), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="generations-{len(images)}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
