"""The Library pages. Every prompt and version is looked up through
visible_to (own + shared with the team) or owned_by (what the owner alone
may change): anything else is a 404."""

from __future__ import annotations

import secrets
import uuid as uuid_mod

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from playground.accounts.access import team_required
from playground.generations import origin
from playground.generations.forms import field_for
from playground.generations.models import Generation
from playground.providers import registry

from . import diff as diffs
from . import run, stats
from .forms import EditForm, LabelForm, NewPromptForm, RunForm, SettingsForm
from .models import Label, LabelMove, Prompt, PromptVersion

LIST_MAX = 100
DRAFTS = "library_drafts"
DRAFTS_KEEP = 10


# --- access helpers ------------------------------------------------------------


def _prompt_or_404(request, uuid):
    return get_object_or_404(Prompt.objects.visible_to(request.user, request.team).select_related("owner"), uuid=uuid)


def _own_prompt_or_404(request, uuid):
    """A prompt this user may change (their own); a teammate's is 404 here."""
    return get_object_or_404(Prompt.objects.owned_by(request.user, request.team), uuid=uuid)


def _version_or_404(request, uuid):
    return get_object_or_404(
        PromptVersion.objects.visible_to(request.user, request.team).select_related("prompt", "prompt__owner",
                                                                                  "created_by"), uuid=uuid)


def _generation_or_404(request, ref):
    try:
        gen = Generation.objects.visible_to(request.user, request.team).filter(uuid=ref).first()
    except ValidationError:
        gen = None
    if gen is None:
        raise Http404("No such generation")
    return gen


def _shares_by_default(request) -> bool:
    return bool(getattr(request.membership, "share_by_default", True))


# --- the list ---------------------------------------------------------------------


@team_required
def library(request):
    q = request.GET.get("q", "").strip()[:200]
    tag = request.GET.get("tag", "").strip()[:40]
    mine = request.GET.get("scope") == "mine"
    visible = (Prompt.objects.owned_by if mine else Prompt.objects.visible_to)(request.user, request.team)
    qs = visible.select_related("owner", "current").prefetch_related(
        Prefetch("labels", queryset=Label.objects.select_related("version")))
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(current__text__icontains=q) | Q(current__tags_text__icontains=q))
    if tag:
        qs = qs.filter(current__tags_text__icontains=f"|{tag.lower()}|")
    all_tags = sorted({t.lower() for tags in visible.values_list("current__tags", flat=True) if tags for t in tags})
    return render(request, "library/library.html", {
        "prompts": list(qs[:LIST_MAX]), "q": q, "tag": tag, "mine": mine, "all_tags": all_tags[:100],
    })


# --- saving a prompt --------------------------------------------------------------


def _source_params(spec, params: dict) -> dict:
    """A model's non-image parameters (the prompt is kept apart, as the text)."""
    images = {p.name for p in spec.image_params()}
    return {k: v for k, v in params.items() if k != "prompt" and k not in images}


def _posted_params(spec, data) -> dict:
    """The playground form's values as far as they are valid (an empty or
    half-filled form still saves what it holds): read field by field, as the
    form reads them, without images."""
    out = {}
    for p in spec.params:
        if p.kind == "image" or p.name == "prompt":
            continue
        field = field_for(p)
        try:
            value = field.clean(field.widget.value_from_datadict(data, {}, p.name))
        except ValidationError:
            continue
        if value is None or value == "":
            continue
        if p.kind == "bool" and value is False and p.default in (None, False):
            continue
        out[p.name] = value
    return {k: v for k, v in out.items() if spec.param(k).applies(out)}


def _stash_draft(request, item: dict) -> str:
    key = secrets.token_urlsafe(8)
    store = dict(request.session.get(DRAFTS) or {})
    store[key] = item
    while len(store) > DRAFTS_KEEP:
        store.pop(next(iter(store)))
    request.session[DRAFTS] = store
    return key


def _source(request, data) -> dict:
    """What a new prompt is saved from: a visible generation (?from=UUID) or
    the playground form's values kept in the session (?draft=KEY)."""
    if data.get("from"):
        gen = _generation_or_404(request, data["from"])
        return {"provider": gen.provider, "model": gen.model, "text": gen.prompt,
                "params": _source_params(gen.spec, gen.params), "generation": gen, "from": str(gen.uuid)}
    item = (request.session.get(DRAFTS) or {}).get(data.get("draft") or "")
    if not item:
        raise Http404("Nothing to save: open Save from the playground or from a generation.")
    return {**item, "draft": data["draft"]}


def _param_rows(provider, model, params: dict) -> list[tuple[str, object]]:
    """(label, value) of stored parameters, as the model's form names them."""
    spec = registry.spec_or_removed(provider, model)
    labels = {p.name: p for p in spec.params}
    rows = []
    for name, value in params.items():
        p = labels.get(name)
        if p is not None and p.choices:
            value = next((label for v, label in p.choice_pairs() if v == value), value)
        if isinstance(value, bool):
            value = "Yes" if value else "No"
        rows.append((p.title if p else name, value))
    return rows


@team_required
def new(request):
    """Save to the library. A POST from the playground form (its "Save to
    library" button) keeps its values and opens this form; this form's own
    POST (step=save) saves the prompt and its version 1."""
    if request.method == "POST" and request.POST.get("step") != "save":
        return _from_playground(request)
    data = request.POST if request.method == "POST" else request.GET
    source = _source(request, data)
    if request.method == "POST":
        form = NewPromptForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            with transaction.atomic():
                prompt = Prompt.objects.create(team=request.team, owner=request.user, title=d["title"],
                                               visibility=d["visibility"])
                prompt.add_version(text=d["text"], provider=source["provider"], model=source["model"],
                                   params=source["params"], tags=d["tags"], notes=d["notes"],
                                   message="First version", by=request.user)
            messages.success(request, f"Saved \u201c{prompt.title}\u201d to the library.")
            return redirect(prompt)
    else:
        text = source.get("text") or ""
        form = NewPromptForm(initial={
            "title": " ".join(text.split())[:60] or registry.spec_or_removed(source["provider"], source["model"]).label,
            "text": text,
            "visibility": Prompt.SHARED if _shares_by_default(request) else Prompt.PRIVATE,
        })
    return render(request, "library/new.html", {
        "form": form, "source": source,
        "provider_label": registry.get_or_removed(source["provider"]).label,
        "model_label": registry.spec_or_removed(source["provider"], source["model"]).label,
        "param_rows": _param_rows(source["provider"], source["model"], source["params"]),
    }, status=400 if form.is_bound else 200)


def _from_playground(request):
    provider = request.GET.get("provider") or request.POST.get("provider") or ""
    model = request.GET.get("model") or ""
    adapter = registry.adapter_classes().get(provider)
    if adapter is None or model not in adapter.models:
        raise Http404("Unknown model")
    spec = adapter.models[model]
    text = (request.POST.get("prompt") or "").replace("\r\n", "\n").strip()
    key = _stash_draft(request, {"provider": provider, "model": model, "text": text,
                                 "params": _posted_params(spec, request.POST)})
    url = f"{reverse('library_new')}?draft={key}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


# --- a prompt -----------------------------------------------------------------------


def _prompt_context(request, prompt, **forms) -> dict:
    versions = list(prompt.versions.select_related("created_by").prefetch_related("labels").order_by("-number"))
    is_owner = prompt.owner_id == request.user.pk
    current = versions[0] if versions else None
    numbers = [v.number for v in versions]
    context = {
        "prompt": prompt, "versions": versions, "current": current, "is_owner": is_owner,
        "labels": list(prompt.labels.select_related("version").order_by("name")),
        "moves": list(LabelMove.objects.filter(label__prompt=prompt)
                      .select_related("label", "from_version", "to_version", "moved_by")[:100]),
        "forked_from": PromptVersion.objects.visible_to(request.user, request.team)
        .select_related("prompt").filter(pk=prompt.forked_from_id).first() if prompt.forked_from_id else None,
        "forks": list(Prompt.objects.visible_to(request.user, request.team)
                      .filter(forked_from__prompt=prompt).select_related("owner", "forked_from")[:50]),
        "diff_a": numbers[1] if len(numbers) > 1 else None, "diff_b": numbers[0] if numbers else None,
    }
    if is_owner and current is not None:
        context["edit_form"] = forms.get("edit_form") or EditForm(initial={
            "text": current.text, "tags": current.tags, "notes": current.notes})
        context["label_form"] = forms.get("label_form") or LabelForm(numbers=numbers,
                                                                     initial={"version": current.number})
        context["settings_form"] = forms.get("settings_form") or SettingsForm(initial={
            "title": prompt.title, "visibility": prompt.visibility})
    return context


@team_required
def prompt_page(request, uuid):
    prompt = _prompt_or_404(request, uuid)
    return render(request, "library/prompt.html", _prompt_context(request, prompt))


@require_POST
@team_required
def edit(request, uuid):
    """The owner saves an edit: a NEW version (the old ones never change)."""
    prompt = _own_prompt_or_404(request, uuid)
    current = prompt.current or prompt.versions.order_by("-number").first()
    form = EditForm(request.POST)
    if not form.is_valid():
        return render(request, "library/prompt.html", _prompt_context(request, prompt, edit_form=form), status=400)
    d = form.cleaned_data
    if (d["text"], d["tags"], d["notes"]) == (current.text, current.tags, current.notes):
        messages.info(request, f"Nothing changed, so no new version was saved (still v{current.number}).")
        return redirect(prompt)
    version = prompt.add_version(text=d["text"], provider=current.provider, model=current.model,
                                 params=current.params, tags=d["tags"], notes=d["notes"], message=d["message"],
                                 by=request.user)
    messages.success(request, f"Saved version {version.number}.")
    return redirect(prompt)


@require_POST
@team_required
def prompt_settings(request, uuid):
    """The owner renames the prompt or changes who sees it (its versions,
    which hold the text and parameters, are not touched)."""
    prompt = _own_prompt_or_404(request, uuid)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return render(request, "library/prompt.html", _prompt_context(request, prompt, settings_form=form),
                      status=400)
    prompt.title, prompt.visibility = form.cleaned_data["title"], form.cleaned_data["visibility"]
    prompt.updated_at = timezone.now()
    prompt.save(update_fields=["title", "visibility", "updated_at"])
    messages.success(request, "Saved." + (" Only you see it now." if prompt.visibility == Prompt.PRIVATE
                                          else " Your team sees it."))
    return redirect(prompt)


@require_POST
@team_required
def fork(request, uuid):
    """Anyone who sees a prompt may fork a version of it: a new prompt of
    their own whose version 1 is that version, linked to it."""
    prompt = _prompt_or_404(request, uuid)
    try:
        number = int(request.POST.get("version") or 0)
    except ValueError:
        number = 0
    versions = prompt.versions.all()
    source = versions.filter(number=number).first() if number else versions.order_by("-number").first()
    if source is None:
        raise Http404("No such version")
    with transaction.atomic():
        visibility = Prompt.SHARED if _shares_by_default(request) else Prompt.PRIVATE
        copy = Prompt.objects.create(team=request.team, owner=request.user, visibility=visibility,
                                     title=f"{prompt.title} (fork)"[:200], forked_from=source)
        copy.add_version(text=source.text, provider=source.provider, model=source.model, params=source.params,
                         tags=source.tags, notes=source.notes,
                         message=f"Forked from {prompt.title} v{source.number}"[:200], by=request.user)
    messages.success(request, f"Forked version {source.number} of \u201c{prompt.title}\u201d.")
    return redirect(copy)


@require_POST
@team_required
def set_label(request, uuid):
    """The owner sets a label on a version, or moves it there; each move is kept."""
    prompt = _own_prompt_or_404(request, uuid)
    numbers = list(prompt.versions.order_by("-number").values_list("number", flat=True))
    form = LabelForm(request.POST, numbers=numbers)
    if not form.is_valid():
        return render(request, "library/prompt.html", _prompt_context(request, prompt, label_form=form), status=400)
    name, version = form.cleaned_data["name"], prompt.versions.get(number=form.cleaned_data["version"])
    with transaction.atomic():
        label = Label.objects.select_for_update().filter(prompt=prompt, name=name).first()
        if label is not None and label.version_id == version.pk:
            messages.info(request, f"\u201c{name}\u201d already points at v{version.number}.")
            return redirect(prompt)
        before = label.version if label else None
        if label is None:
            label = Label.objects.create(prompt=prompt, name=name, version=version)
        else:
            label.version, label.updated_at = version, timezone.now()
            label.save(update_fields=["version", "updated_at"])
        LabelMove.objects.create(label=label, from_version=before, to_version=version, moved_by=request.user)
    moved = f"moved from v{before.number} to" if before else "set on"
    messages.success(request, f"Label \u201c{name}\u201d {moved} v{version.number}.")
    return redirect(prompt)


# --- a version ----------------------------------------------------------------------


@team_required
def version_page(request, uuid):
    version = _version_or_404(request, uuid)
    return render(request, "library/version.html", {
        "version": version, "prompt": version.prompt,
        "labels": list(version.labels.all()),
        "param_rows": _param_rows(version.provider, version.model, version.params),
        "stats": stats.version_stats(version, request.user, request.team),
        "strip": stats.strip(version, request.user, request.team),
        "recent": list(stats.runs_of(version, request.user, request.team).select_related("owner")[:10]),
    })


@team_required
def diff(request, uuid):
    prompt = _prompt_or_404(request, uuid)
    versions = {v.number: v for v in prompt.versions.all()}
    numbers = sorted(versions, reverse=True)

    def pick(name, default):
        try:
            n = int(request.GET.get(name) or default or 0)
        except ValueError:
            raise Http404("No such version") from None
        if n not in versions:
            raise Http404("No such version")
        return versions[n]

    a = pick("a", numbers[1] if len(numbers) > 1 else numbers[0] if numbers else None)
    b = pick("b", numbers[0] if numbers else None)
    level = "line" if request.GET.get("level") == "line" else "word"
    return render(request, "library/diff.html", {
        "prompt": prompt, "a": a, "b": b, "numbers": numbers, "level": level,
        "pieces": diffs.text_diff(a.text, b.text, level),
        "params": diffs.params_diff(a.params, b.params),
        "model_changed": (a.provider, a.model) != (b.provider, b.model),
        "tags_changed": a.tags != b.tags, "notes_changed": a.notes != b.notes,
    })


@team_required
def run_version(request, uuid):
    """Run a version: pick the model, fill its variables, and open the
    playground filled (parameters the target lacks are listed as dropped)."""
    version = _version_or_404(request, uuid)
    names = run.variables(version.text)
    own = f"{version.provider}:{version.model}"
    form = RunForm(request.POST or None, names=names, initial={"target": own})
    if request.method == "POST" and form.is_valid():
        provider, model = form.chosen()
        spec = registry.adapter_classes()[provider].models[model]
        text = run.substitute(version.text, form.values())
        limit = run.prompt_limit(spec)
        if limit and len(text) > limit:
            form.add_error(None, f"With these values the prompt has {len(text)} characters; "
                                 f"{spec.label} takes at most {limit}.")
        else:
            params, dropped = run.carry(version.params, spec)
            url = origin.stash_prefill(
                request, provider, model, {"prompt": text, **params}, version_uuid=version.uuid,
                note=f"Running version {version.number} of {version.prompt.title}.", dropped=dropped)
            return redirect(url)
    return render(request, "library/run.html", {
        "version": version, "prompt": version.prompt, "form": form, "names": names,
    }, status=400 if form.is_bound else 200)
