from functools import cache, partial
import json
import uuid as uuid_mod

from django.contrib import messages
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling, reswap, retarget

from playground.accounts.access import team_required
from playground.accounts.models import endpoint_source
from playground.ledger import book
from playground.ledger.budgets import BudgetExceeded
from playground.lib.images import THUMB_TYPES
from playground.providers import registry

from . import jobs, origin
from .forms import field_for, form_for
from .models import Generation, GenerationImage, InputImage

RECENT_JOBS = 12


def _visible(request, model):
    """The rows of model this user may see in the current team (visible_to)."""
    return model.objects.visible_to(request.user, request.team)


def _visible_generations(request):
    return _visible(request, Generation)


def _generation_or_404(request, uuid):
    # The owner comes in the same query: the page says who made it, with no
    # extra query per poll of the card.
    return get_object_or_404(_visible_generations(request).select_related("team", "owner"), uuid=uuid)


def _own_generation_or_404(request, uuid):
    """A generation this user may change (their own): a teammate's shared
    one is 404 here, as anything outside the team is."""
    return get_object_or_404(Generation.objects.owned_by(request.user, request.team).select_related("team"), uuid=uuid)


def _lazy(fn, *args):
    """A context value computed only if the template or partial being
    rendered uses it, and then once (the template calls it)."""
    return cache(partial(fn, *args))


def _render(request, template, context, part=None, **kwargs):
    """One template per page: the whole page, or one named partial of it
    (django-htmx's partial rendering: "page.html#name"), with the same context."""
    return render(request, f"{template}#{part}" if part else template, context, **kwargs)


def _pick(request):
    """The provider and model picked in the query string (or the first ones;
    with an input image picked, the first model that takes one)."""
    providers = registry.adapter_classes()
    if request.GET.get("input") and not request.GET.get("provider"):
        for key, mkey, _ in _image_models():
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
            gen = jobs.create(team=request.team, owner=request.user, provider=provider_key,
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
            return _render(request, PLAYGROUND, {**_card_context(request, gen), "fresh": True,
                                                 "submit_token": uuid_mod.uuid4(), "budget_warnings": warnings},
                           "created")
        for w in warnings:
            messages.warning(request, w)
        return redirect(f"{reverse('playground')}?provider={provider_key}&model={spec.key}")
    context = _playground_context(request, provider_key, adapter, spec, form, picked)
    if request.htmx and form.is_bound:
        # The form again, with its errors, in place of the one submitted.
        return reswap(retarget(_render(request, PLAYGROUND, context, "model-form"), "#model-form"), "outerHTML")
    part = "model-form" if request.htmx and request.GET.get("fragment") == "form" else None
    return _render(request, PLAYGROUND, context, part)


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
    return {
        "form": form, "spec": spec, "provider_key": provider_key, "adapter": adapter,
        "providers": registry.adapter_classes(), "picked": picked,
        "jobs": _lazy(_recent_jobs, request),
        "remix_error": _lazy(_remix_error, request),
        # A form sent back with its errors keeps its token: no job was made with it.
        "submit_token": (_client_token(request) if form.is_bound else None) or uuid_mod.uuid4(),
        "estimate": _lazy(_form_estimate, spec, form),
        "quote": _lazy(lambda: _budget_quote(request, provider_key, _form_estimate(spec, form))),
        "endpoint_source": _lazy(endpoint_source, request.team, provider_key),
        "prefill": origin.prefill(request, provider_key, spec.key),
        "origin": _lazy(_origin_field, request, provider_key, spec),
        "share_checked": _lazy(_share_checked, request, form),
    }


def _posted_visibility(request) -> str | None:
    """The form's "Share with the team" checkbox: a hidden "private" always
    travels and the checked box adds "team". Neither (another client that
    leaves the field out): None, the member's default (jobs.create)."""
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
    """jobs.create's lineage arguments from the form's signed origin field;
    a remix of a generation this user cannot see records nothing."""
    data = origin.read(request.POST.get("origin", "")[:1000])
    out = {}
    if data.get("remix"):
        out["remix_of"] = _visible_generations(request).filter(uuid=data["remix"]).first()
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
        return _visible_generations(request).filter(uuid=ref).first()
    except ValidationError:
        return None


def _form_estimate(spec, form):
    """The estimate for what the form holds now (submitted, or its initial values)."""
    if form.is_bound:
        return _quote(spec, form.data)
    return _quote_values(spec, {**spec.defaults(), **form.initial})


def _recent_jobs(request, after=None):
    """The newest cards of this user's jobs (newer than the job `after`, if given)."""
    qs = Generation.objects.owned_by(request.user, request.team)
    if after is not None:
        qs = qs.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
    return list(qs.prefetch_related("images")[:RECENT_JOBS])


@team_required
def estimate(request, provider, model):
    """The cost estimate for the priced fields in the form right now (htmx).
    Provider and model come from the path: a form field called "model"
    (Flux Kontext's Pro/Max) is a priced field, not the route."""
    adapter = registry.adapter_classes().get(provider)
    if adapter is None or model not in adapter.models:
        raise Http404("Unknown model")
    amount = _quote(adapter.models[model], request.GET)
    return _render(request, PLAYGROUND, {"estimate": amount, "provider_key": provider,
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


@team_required
def new_jobs(request):
    """The cards of jobs newer than the newest one a page shows (e.g. started
    in another tab): the playground asks every few seconds, one request per
    page. 204 when there is nothing new."""
    newest = None
    ref = request.GET.get("after")
    if ref:
        try:
            newest = Generation.objects.owned_by(request.user, request.team).filter(uuid=ref).values_list(
                "created_at", "pk").first()
        except ValidationError:
            newest = None
        if newest is None:  # not a job of this user: nothing to compare with
            return HttpResponse(status=204)
    cards = _recent_jobs(request, after=newest)
    if not cards:
        return HttpResponse(status=204)
    return _render(request, PLAYGROUND, {"jobs": cards}, "new-jobs")


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
        return _visible(request, InputImage).filter(uuid=ref).first()
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
        gen = _visible_generations(request).filter(uuid=ref, status=Generation.FAILED).first()
    except ValidationError:
        return None
    return {"field": gen.error_field, "message": gen.error_message} if gen and gen.error_field else None


GENERATION = "generations/generation.html"


@team_required
def generation(request, uuid):
    gen = _generation_or_404(request, uuid)
    context = _generation_context(request, gen)
    if not request.htmx:
        return _render(request, GENERATION, context)
    # The card alone, polled by htmx while the job runs.
    if context["on_detail"] and not gen.is_active and request.GET.get("poll"):
        # The detail page shows a finished job's images first: reload it.
        return HttpResponseClientRefresh()
    response = _render(request, GENERATION, context, "card")
    if not gen.is_active and request.GET.get("poll"):
        # The final card replaces the polling one, and polling stops.
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _card_context(request, gen) -> dict:
    """What a job card shows: the job, and whether it sits on its own detail page."""
    return {"gen": gen, "on_detail": not request.htmx or _on_detail_page(request, gen)}


def _generation_context(request, gen) -> dict:
    """Everything the detail page shows; its card partial renders from the
    same context (and computes only what the card uses)."""
    return {
        **_card_context(request, gen),
        "snippets": _lazy(_snippets, gen), "inputs": _lazy(_inputs_of, gen),
        "param_rows": _lazy(_param_rows, gen), "image_models": _lazy(_image_models),
        "is_mine": gen.owner_id == request.user.pk,
        # ?reveal=1: an adult result shown unblurred without JS (this page only).
        "reveal": bool(request.GET.get("reveal")),
        "is_favorite": _lazy(lambda: gen.favorites.filter(user_id=request.user.pk).exists()),
        "lineage": _lazy(_lineage, request, gen),
    }


LINEAGE_CAP = 20


def _lineage(request, gen) -> dict:
    """Where the generation came from and what was made from it, as far as
    the viewer may see: a private generation of a teammate is left out."""
    visible = _visible_generations(request).select_related("owner").prefetch_related("images")
    remix_of = visible.filter(pk=gen.remix_of_id).first() if gen.remix_of_id else None
    input_from = visible.filter(images=gen.source_image_id).first() if gen.source_image_id else None
    # Made from it: its remixes, and jobs that took one of its images as
    # input (use as input records the image on the job: source_image).
    made = (visible.filter(Q(remix_of=gen) | Q(source_image__generation=gen)).exclude(pk=gen.pk)
            .order_by("-created_at", "-pk"))
    made_list = list(made[:LINEAGE_CAP])
    made_count = len(made_list) if len(made_list) < LINEAGE_CAP else made.count()
    # Made through the OpenAI-compatible API: the token (the page is the
    # team's own, and a token always acts in its generation's team).
    api_token = gen.api_token if gen.api_token_id else None
    return {
        "remix_of": remix_of, "input_from": input_from, "version": gen.prompt_version_uuid,
        "made": [(g, _made_how(g, gen)) for g in made_list], "made_count": made_count,
        "api_token": api_token if api_token is not None and api_token.team_id == gen.team_id else None,
        "any": bool(remix_of or input_from or gen.prompt_version_uuid or made_list or api_token),
    }


def _made_how(child, gen) -> str:
    if child.remix_of_id == gen.pk:
        return "remix"
    return "used its image as input"


def _on_detail_page(request, gen) -> bool:
    """Whether an htmx request comes from the job's own detail page (where
    its card has no "Details" link and the images are shown above it)."""
    from urllib.parse import urlsplit

    return urlsplit(request.htmx.current_url or "").path == gen.get_absolute_url()


def _param_rows(gen):
    """(label, value) of the request's parameters as the form names them, in
    the declared order: a choice's label, Yes/No; unknown keys as stored."""
    params = dict(gen.params)
    rows = []
    for p in gen.spec.params:
        if p.name not in params:
            continue
        v = params.pop(p.name)
        if p.kind == "image":
            v = "input image (shown below)"
        elif p.kind == "bool":
            v = "Yes" if v else "No"
        elif p.choices:
            v = next((label for value, label in p.choice_pairs() if value == v), v)
        rows.append((p.title, v))
    rows += list(params.items())
    return rows


def _snippets(gen):
    from .snippets import snippets

    try:
        return snippets(gen)
    except Exception:  # a snippet must never break the page
        return {}


def _inputs_of(gen):
    return [img for img in gen.input_images().values() if img is not None]


@require_POST
@team_required
def cancel(request, uuid):
    gen = _own_generation_or_404(request, uuid)
    result = gen.cancel()
    if request.htmx:
        return _render(request, GENERATION, _generation_context(request, gen), "card")
    if result == "too late":
        messages.info(request, "The job had already finished.")
    return redirect(gen.get_absolute_url())


def _image_or_404(request, uuid):
    return get_object_or_404(_visible(request, GenerationImage).select_related("generation"), uuid=uuid)


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
    if (provider, model) in {(p, m) for p, m, _ in _image_models()}:
        query += f"&provider={provider}&model={model}"
    return redirect(f"{reverse('playground')}?{query}")


def _image_models():
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
    gen = _generation_or_404(request, uuid)
    img = next((i for i in gen.input_images().values() if i is not None and i.uuid == input_uuid), None)
    if img is None:
        raise Http404("Not an input of this generation")
    return file_response(img.file, img.content_type, filename=_input_filename(img))


@team_required
def input_image(request, uuid):
    img = get_object_or_404(_visible(request, InputImage), uuid=uuid)
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


# --- provider callbacks ---------------------------------------------------------


@csrf_exempt
@require_POST
def provider_callback(request, provider, token):
    """A provider says a job ended. Unsigned, so only a hint: the token in the
    URL finds the job, and the job asks the provider itself (RELIABILITY 5)."""
    gen = Generation.objects.filter(provider=provider, callback_token=token).first()
    if gen is None:
        raise Http404("Unknown callback")
    # The body only matters for a job whose submit answer was lost: the job
    # id it names is a claim, confirmed by a status call before anything changes.
    body = None
    if len(request.body) <= CALLBACK_MAX_BYTES:
        try:
            body = json.loads(request.body)
        except ValueError:
            pass
    jobs.nudge(gen, body)
    return JsonResponse({"ok": True})


CALLBACK_MAX_BYTES = 64 * 1024


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
