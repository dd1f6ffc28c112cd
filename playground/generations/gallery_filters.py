"""The gallery's filters: the filter form of its URL, text search on the
prompt (search.py), and keyset pagination on (created_at, id).

Pages never COUNT or OFFSET: a page is the rows older than the cursor of the
last card shown (`?after=<created_at>_<id>`), so generations created while
someone scrolls neither shift nor repeat what comes next. A page costs the
same few queries whatever its size: the rows (with their owner), their
images (one prefetch) and the viewer's favorites among them (one query)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone as dt_timezone
import re
from urllib.parse import urlencode

from django import forms
from django.db.models import Prefetch, Q

from playground.providers import registry

from . import search as prompt_search
from .models import Favorite, Generation, GenerationImage

PAGE_SIZE = 24
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
    """Generations whose prompt has every word of text (search.py: SQLite's
    FTS5 index or PostgreSQL's full-text search), the condition alone."""
    return prompt_search.matching(qs, text)


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
        # The search index first: a page of a rare word is found by id.
        qs = prompt_search.narrow(qs, form.value("q"))
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
