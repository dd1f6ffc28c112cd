import json
import uuid as uuid_mod

from django.contrib import messages
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling, reswap, retarget

from playground.accounts.access import team_required
from playground.accounts.models import endpoint_source
from playground.providers import registry

from . import jobs
from .forms import field_for, form_for
from .models import Generation, GenerationImage, InputImage

RECENT_JOBS = 12


def _visible_generations(request):
    """What this user may see: their own generations in the current team."""
    return Generation.objects.filter(team=request.team, owner=request.user)


def _generation_or_404(request, uuid):
    return get_object_or_404(_visible_generations(request).select_related("team"), uuid=uuid)


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


@team_required
def playground(request):
    provider_key, adapter, spec = _pick(request)
    Form = form_for(spec)
    form_kwargs = {"team": request.team, "owner": request.user, "adult_allowed": request.team.adult_content_enabled}
    picked = _picked_input(request)
    if request.method == "POST":
        form = Form(request.POST, request.FILES, **form_kwargs)
        if form.is_valid():
            gen = jobs.create(team=request.team, owner=request.user, provider=provider_key,
                              model=spec.key, params=form.params(), client_token=_client_token(request))
            if request.htmx:
                # The new card goes on top of the job column; the form stays as
                # it is, with a fresh submit token (out of band).
                return render(request, "generations/playground.html#created", {"gen": gen, "fresh": True,
                                                                     "submit_token": uuid_mod.uuid4()})
            return redirect(f"{reverse('playground')}?provider={provider_key}&model={spec.key}")
        if request.htmx:
            response = render(request, "generations/playground.html#model-form",
                              {"form": form, "spec": spec, "provider_key": provider_key, "adapter": adapter,
                               "picked": picked, "endpoint_source": endpoint_source(request.team, provider_key),
                               "estimate": _quote(spec, request.POST),
                               "submit_token": request.POST.get("submit_token", "")})
            return reswap(retarget(response, "#model-form"), "outerHTML")
    else:
        initial = _initial_from_query(request, spec)
        images = spec.image_params()
        if picked and images and images[0].show_if:
            # e.g. Nano Banana: switch to the edit variant, where the image applies.
            initial.update({k: v[0] for k, v in images[0].show_if.items()})
        form = Form(initial=initial, **form_kwargs)
    estimate_now = _quote(spec, request.POST) if form.is_bound else _quote_values(spec, {**spec.defaults(), **form.initial})
    template = "generations/playground.html"
    if request.htmx and request.GET.get("fragment") == "form":
        template += "#model-form"
    jobs_qs = _visible_generations(request).prefetch_related("images")[:RECENT_JOBS]
    return render(request, template, {
        "form": form, "spec": spec, "provider_key": provider_key, "adapter": adapter,
        "providers": registry.adapter_classes(), "jobs": jobs_qs, "picked": picked,
        "remix_error": _remix_error(request), "submit_token": uuid_mod.uuid4(), "estimate": estimate_now,
        "endpoint_source": endpoint_source(request.team, provider_key),
    })


@team_required
def estimate(request, provider, model):
    """The cost estimate for the priced fields in the form right now (htmx).
    Provider and model come from the path: a form field called "model"
    (Flux Kontext's Pro/Max) is a priced field, not the route."""
    adapter = registry.adapter_classes().get(provider)
    if adapter is None or model not in adapter.models:
        raise Http404("Unknown model")
    return render(request, "generations/playground.html#estimate", {"estimate": _quote(adapter.models[model], request.GET)})


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
    qs = _visible_generations(request)
    ref = request.GET.get("after")
    if ref:
        try:
            newest = qs.filter(uuid=ref).values_list("created_at", "pk").first()
        except ValidationError:
            newest = None
        if newest is None:  # not a job of this user: nothing to compare with
            return HttpResponse(status=204)
        qs = qs.filter(Q(created_at__gt=newest[0]) | Q(created_at=newest[0], pk__gt=newest[1]))
    cards = list(qs.prefetch_related("images")[:RECENT_JOBS])
    if not cards:
        return HttpResponse(status=204)
    return render(request, "generations/playground.html#new-jobs", {"jobs": cards})


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
        return InputImage.objects.filter(team=request.team, owner=request.user, uuid=ref).first()
    except ValidationError:
        return None


def _initial_from_query(request, spec):
    """Prefill from ?remix=GENERATION_UUID: the same parameters again."""
    ref = request.GET.get("remix")
    if not ref:
        return {}
    try:
        gen = _visible_generations(request).filter(uuid=ref).first()
    except ValidationError:
        return {}
    if gen is None or gen.model != spec.key:
        return {}
    names = {p.name for p in spec.params if p.kind != "image"}
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


@team_required
def generation(request, uuid):
    gen = _generation_or_404(request, uuid)
    if request.htmx:
        # The card alone, polled by htmx while the job runs.
        on_detail = _on_detail_page(request, gen)
        if on_detail and not gen.is_active and request.GET.get("poll"):
            # The detail page shows a finished job's images first: reload it.
            return HttpResponseClientRefresh()
        response = render(request, "generations/generation.html#card", {"gen": gen, "on_detail": on_detail})
        if not gen.is_active and request.GET.get("poll"):
            # The final card replaces the polling one, and polling stops.
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "generations/generation.html", {"gen": gen, "snippets": _snippets(gen), "inputs": _inputs_of(gen),
                                               "param_rows": _param_rows(gen), "on_detail": True,
                                               "image_models": _image_models()})


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
    gen = _generation_or_404(request, uuid)
    result = gen.cancel()
    if request.htmx:
        return render(request, "generations/generation.html#card", {"gen": gen, "on_detail": _on_detail_page(request, gen)})
    if result == "too late":
        messages.info(request, "The job had already finished.")
    return redirect(gen.get_absolute_url())


@team_required
def gallery(request):
    qs = GenerationImage.objects.filter(
        generation__team=request.team, generation__owner=request.user
    ).select_related("generation")
    page = Paginator(qs.order_by("-generation__created_at", "index"), 24).get_page(request.GET.get("page"))
    return render(request, "generations/gallery.html", {"page": page})


def _image_or_404(request, uuid):
    return get_object_or_404(
        GenerationImage.objects.select_related("generation"),
        uuid=uuid, generation__team=request.team, generation__owner=request.user,
    )


@team_required
def image(request, uuid):
    img = _image_or_404(request, uuid)
    return _file_response(img.file, img.content_type, request.GET.get("download"), img)


@team_required
def image_thumb(request, uuid):
    img = _image_or_404(request, uuid)
    return _file_response(img.thumbnail or img.file, "image/webp" if img.thumbnail else img.content_type, None, img)


def _file_response(field, content_type, download, img):
    try:
        fh = field.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("Image file missing") from None
    name = f"{img.generation.model}-{str(img.generation.uuid)[:8]}-{img.index}.{field.name.rsplit('.', 1)[-1]}"
    response = FileResponse(fh, content_type=content_type, as_attachment=bool(download), filename=name)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
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
def input_image(request, uuid):
    img = get_object_or_404(InputImage, uuid=uuid, team=request.team, owner=request.user)
    response = FileResponse(img.file.open("rb"), content_type=img.content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def input_image_public(request, token):
    """A signed, expiring URL for one input image, for providers to fetch.
    No login: the signature is the permission (RELIABILITY 6, 8)."""
    try:
        ref = signing.loads(token, salt="input-image", max_age=settings.INPUT_URL_TTL_SECONDS)
    except signing.BadSignature:
        raise Http404("Link expired or invalid") from None
    img = get_object_or_404(InputImage, uuid=ref)
    response = FileResponse(img.file.open("rb"), content_type=img.content_type)
    response["Cache-Control"] = "private, max-age=300"
    return response


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
