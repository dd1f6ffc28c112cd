"""The playground: the form page of one provider's model (prefilled by a
remix, a picked input image or the prompt library), the job it starts, the
column of this user's recent jobs, and the form's cost estimate (htmx)."""

import uuid as uuid_mod

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import reswap, retarget

from playground.accounts.access import team_required
from playground.accounts.models import endpoint_source
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded
from playground.providers import registry

from . import origin
from .pipeline import create
from .forms import field_for, form_for
from .models import Generation, InputImage
from .views_detail import card_context
from .views_media import image_models
from .views_shared import lazy, render_page, visible, visible_generations


RECENT_JOBS = 12


def _pick(request):
    """The provider and model picked in the query string (or the first ones;
    with an input image picked, the first model that takes one)."""
    providers = registry.adapter_classes()
    if request.GET.get("input") and not request.GET.get("provider"):
        for key, mkey, _ in image_models():
            return key, providers[key], providers[key].models[mkey]
    provider_key = request.GET.get("provider") or request.POST.get("provider") or next(iter(providers))
    if provider_key not in providers:
        raise Http404("Unknown provider")
    adapter = providers[provider_key]
    model_key = request.GET.get("model") or request.POST.get("model") or next(iter(adapter.models))
    if model_key not in adapter.models:
        raise Http404("Unknown model")
    return provider_key, adapter, adapter.models[model_key]


PLAYGROUND = "generations/playground.html"


@team_required
def playground(request):
    provider_key, adapter, spec = _pick(request)
    picked = _picked_input(request) or _remixed_input(request)
    form = _playground_form(request, spec, picked)
    gen = None
    if form.is_bound and form.is_valid():
        try:
            gen = create.create(team=request.team, owner=request.user, provider=provider_key,
                              model=spec.key, params=form.params(), client_token=_client_token(request),
                              visibility=_posted_visibility(request), **_posted_origin(request))
        except BudgetExceeded as e:
            # Refused before anything was made or sent: said on the form.
            form.add_error(None, e.message)
    if gen is not None:
        # A soft budget this run goes over: allowed, and said.
        warnings = [w.warning() for w in getattr(gen, "budget_warnings", ())]
        if request.htmx:
            # The new card goes on top of the job column; the form stays as
            # it is, with a fresh submit token (out of band).
            return render_page(request, PLAYGROUND, {**card_context(request, gen), "fresh": True,
                                                 "submit_token": uuid_mod.uuid4(), "budget_warnings": warnings},
                           "created")
        for w in warnings:
            messages.warning(request, w)
        return redirect(f"{reverse('playground')}?provider={provider_key}&model={spec.key}")
    context = _playground_context(request, provider_key, adapter, spec, form, picked)
    if request.htmx and form.is_bound:
        # The form again, with its errors, in place of the one submitted.
        return reswap(retarget(render_page(request, PLAYGROUND, context, "model-form"), "#model-form"), "outerHTML")
    part = "model-form" if request.htmx and request.GET.get("fragment") == "form" else None
    return render_page(request, PLAYGROUND, context, part)


def _playground_form(request, spec, picked):
    """The model's form: bound to a POST, else prefilled (a remix, a picked input)."""
    Form = form_for(spec)
    form_kwargs = {"team": request.team, "owner": request.user, "adult_allowed": request.team.adult_content_enabled}
    if request.method == "POST":
        return Form(request.POST, request.FILES, **form_kwargs)
    initial = _initial_from_query(request, spec)
    images = spec.image_params()
    if picked and images and images[0].show_if:
        # e.g. Nano Banana: switch to the edit variant, where the image applies.
        initial.update({k: v[0] for k, v in images[0].show_if.items()})
    return Form(initial=initial, **form_kwargs)


def _playground_context(request, provider_key, adapter, spec, form, picked) -> dict:
    """Everything the playground page shows; its partials (the form alone,
    the estimate) render from the same context."""
    jobs_shown = lazy(recent_jobs, request)
    return {
        "form": form, "spec": spec, "provider_key": provider_key, "adapter": adapter,
        "providers": registry.adapter_classes(), "picked": picked,
        "jobs": jobs_shown,
        # The page's job poll runs while the column shows an active card.
        "polled": lazy(lambda: any(gen.is_active for gen in jobs_shown())),
        "remix_error": lazy(_remix_error, request),
        # A form sent back with its errors keeps its token: no job was made with it.
        "submit_token": (_client_token(request) if form.is_bound else None) or uuid_mod.uuid4(),
        "estimate": lazy(_form_estimate, spec, form),
        "quote": lazy(lambda: _budget_quote(request, provider_key, _form_estimate(spec, form))),
        "endpoint_source": lazy(endpoint_source, request.team, provider_key),
        "prefill": origin.prefill(request, provider_key, spec.key),
        "origin": lazy(_origin_field, request, provider_key, spec),
        "share_checked": lazy(_share_checked, request, form),
    }


def _posted_visibility(request) -> str | None:
    """The form's "Share with the team" checkbox: a hidden "private" always
    travels and the checked box adds "team". Neither (another client that
    leaves the field out): None, the member's default (pipeline.create)."""
    sent = request.POST.getlist("visibility")
    if Generation.SHARED in sent:
        return Generation.SHARED
    if Generation.PRIVATE in sent:
        return Generation.PRIVATE
    return None


def _share_checked(request, form) -> bool:
    """Whether the checkbox is ticked: as sent (a form back with errors),
    else the member's default for this team."""
    if form.is_bound and request.POST.getlist("visibility"):
        return _posted_visibility(request) == Generation.SHARED
    return bool(getattr(request.membership, "share_by_default", True))


def _origin_field(request, provider_key, spec) -> str:
    """The signed hidden field saying where this form's jobs come from: kept
    from the POST (a form sent back with errors), else the remix or the prefill."""
    if request.method == "POST":
        return request.POST.get("origin", "")[:1000]
    item = origin.prefill(request, provider_key, spec.key)
    if item:
        return origin.sign(version=item.get("version"))
    remixed = _remixed(request)
    return origin.sign(remix=remixed.uuid) if remixed else ""


def _posted_origin(request) -> dict:
    """pipeline.create's lineage arguments from the form's signed origin field;
    a remix of a generation this user cannot see records nothing."""
    data = origin.read(request.POST.get("origin", "")[:1000])
    out = {}
    if data.get("remix"):
        out["remix_of"] = visible_generations(request).filter(uuid=data["remix"]).first()
    if data.get("version"):
        out["prompt_version_uuid"] = data["version"]
    return out


def _remixed_input(request):
    """A remix keeps its input image: the remixed job's first input, the
    viewer's own, or for a teammate's shared job a copy the viewer owns
    (made once: the same picture is found again by its hash)."""
    if request.method != "GET" or request.GET.get("input"):
        return None
    gen = _remixed(request)
    if gen is None:
        return None
    inp = next((i for i in gen.input_images().values() if i is not None), None)
    if inp is None or inp.owner_id == request.user.pk:
        return inp
    mine = InputImage.objects.owned_by(request.user, request.team).filter(sha256=inp.sha256).first()
    if mine is not None:
        return mine
    try:
        with inp.file.open("rb") as fh:
            return InputImage.from_bytes(team=request.team, owner=request.user, data=fh.read(), source=inp.source)
    except Exception:  # the file is gone or damaged: the remix opens without it
        return None


def _remixed(request):
    """The generation named by ?remix=UUID, if this user may see it."""
    ref = request.GET.get("remix")
    if not ref:
        return None
    try:
        return visible_generations(request).filter(uuid=ref).first()
    except ValidationError:
        return None


def _form_estimate(spec, form):
    """The estimate for what the form holds now (submitted, or its initial values)."""
    if form.is_bound:
        return _quote(spec, form.data)
    return _quote_values(spec, {**spec.defaults(), **form.initial})


def recent_jobs(request):
    """The newest cards of this user's jobs."""
    return list(Generation.objects.owned_by(request.user, request.team).prefetch_related("images")[:RECENT_JOBS])


@team_required
def estimate(request, provider, model):
    """The cost estimate for the priced fields in the form right now (htmx).
    Provider and model come from the path: a form field called "model"
    (Flux Kontext's Pro/Max) is a priced field, not the route."""
    adapter = registry.adapter_classes().get(provider)
    if adapter is None or model not in adapter.models:
        raise Http404("Unknown model")
    amount = _quote(adapter.models[model], request.GET)
    return render_page(request, PLAYGROUND, {"estimate": amount, "provider_key": provider,
                                         "quote": _budget_quote(request, provider, amount)}, "estimate")


def _budget_quote(request, provider, amount):
    """The run's cost in its unit and in money, and each budget it touches."""
    try:
        return book.quote(request.team, request.user, provider, amount)
    except Exception:  # a quote must never break the form
        return None


def _quote(spec, data):
    """The estimate for submitted data, read as the form reads it (so it is
    what the job will be charged): only the priced fields are looked at."""
    priced = spec.priced_params()
    if not priced:
        return spec.default_estimate
    values = {}
    for p in priced:
        field = field_for(p)
        try:
            value = field.clean(field.widget.value_from_datadict(data, {}, p.name))
        except ValidationError:  # partial input is fine: the default stands in
            continue
        if value is None or value == "":
            continue
        values[p.name] = value
    return _quote_values(spec, {**spec.defaults(), **values})


def _quote_values(spec, values):
    values = {k: v for k, v in values.items() if k in {p.name for p in spec.params} and spec.param(k).kind != "image"}
    values = {k: v for k, v in values.items() if spec.param(k).applies(values)}
    try:
        return spec.estimate(values)
    except Exception:  # an estimate must never break the form
        return spec.default_estimate


def _client_token(request):
    try:
        return uuid_mod.UUID(request.POST.get("submit_token", ""))
    except ValueError:
        return None


def _picked_input(request):
    """An input image chosen with "use as input" (?input=UUID), team-checked."""
    ref = request.GET.get("input") or request.POST.get("input")
    if not ref:
        return None
    try:
        return visible(request, InputImage).filter(uuid=ref).first()
    except ValidationError:
        return None


def _initial_from_query(request, spec):
    """Prefill from ?prefill=KEY (values put in the session, e.g. by the
    prompt library) or ?remix=GENERATION_UUID (the same parameters again)."""
    names = {p.name for p in spec.params if p.kind != "image"}
    provider_key = request.GET.get("provider") or next(iter(registry.adapter_classes()))
    item = origin.prefill(request, provider_key, spec.key)
    if item:
        return {k: v for k, v in (item.get("params") or {}).items() if k in names}
    gen = _remixed(request)
    if gen is None or gen.model != spec.key:
        return {}
    return {k: v for k, v in gen.params.items() if k in names}


def _remix_error(request):
    """The failed job's validation error, to show on its form field again."""
    ref = request.GET.get("remix")
    if not ref:
        return None
    try:
        gen = visible_generations(request).filter(uuid=ref, status=Generation.FAILED).first()
    except ValidationError:
        return None
    return {"field": gen.error_field, "message": gen.error_message} if gen and gen.error_field else None
