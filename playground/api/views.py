"""The OpenAI-compatible Images API under /v1/.

Every request authenticates with its bearer token (accounts.apitokens), is
counted against the token's rate limit, and becomes normal generations
(pipeline.create: owner, team, visibility, ledger, budgets, lineage). The image
endpoints then wait for the task workers to store the images, up to
API_WAIT_SECONDS, as coroutines: while a request waits, it holds no thread
(api/waiting.py: one status read per tick for all the waiting requests;
under `manage.py serve` the web process is uvicorn's event loop, and the
request's few database calls run on a small shared pool of threads, see
playground/asgi.py). The view never calls
a provider itself."""

from __future__ import annotations

import base64
import json
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from playground.accounts.apitokens import TokenRejected, authenticate
from playground.generations.pipeline import create
from playground.generations.models import Generation, GenerationImage, InputImage
from playground.generations.views_media import file_response
from playground.ledger.budgets import BudgetExceeded
from playground.lib import text
from playground.providers.errors import ProviderError

from . import catalog, mapping, ratelimit
from . import waiting
from .errors import ApiError, invalid
from .models import ApiRequest

log = logging.getLogger("playground.api")

IMAGE_SALT = "api-image"
# A failed job's error kind -> HTTP status (the rest: 500).
FAILURE_STATUS = {"validation": 400, "content_blocked": 400, "unavailable": 503}
# A finished job's failure already went through the job's own retries, and a
# client's retry of the POST would make (and charge) new jobs: the openai
# client honours this header.
NO_RETRY = {"x-should-retry": "false"}


# --- the image endpoints ------------------------------------------------------------


@csrf_exempt
async def generations(request):
    return await _images(request, "generations")


@csrf_exempt
async def edits(request):
    return await _images(request, "edits")


@csrf_exempt
async def variations(request):
    return await _images(request, "variations")


async def _images(request, endpoint: str):
    try:
        if request.method != "POST":
            raise ApiError(405, f"Use POST for /v1/images/{endpoint}.", code="method_not_allowed")
        req_pk, ids = await sync_to_async(_start)(request, endpoint)
        done = await waiting.wait_for(ids, settings.API_WAIT_SECONDS)
        return await sync_to_async(_answer)(request, req_pk, waited_out=not done)
    except ApiError as e:
        return e.response()
    except Exception:
        log.exception("API /v1/images/%s failed", endpoint)
        return ApiError(500, "The server had an error while processing your request.", code="internal_error").response()


def _auth(request):
    """The request's token, counted against its rate limit (401 / 429)."""
    try:
        token = authenticate(request)
    except TokenRejected as e:
        raise ApiError(401, e.message, code=e.code) from None
    wait = ratelimit.hit(token)
    if wait is not None:
        limit = ratelimit.limit_of(token)
        raise ApiError(429, f"Rate limit reached for API token '{token.name}' (...{token.last4}): {limit} requests "
                       f"per minute. Please try again in {wait}s.", type="requests", code="rate_limit_exceeded",
                       headers={"Retry-After": str(wait), "x-ratelimit-limit-requests": str(limit),
                                "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{wait}s"})
    return token


def _read(request) -> tuple[dict, dict]:
    """The request's fields and uploaded files (JSON, or a multipart form),
    every text in them valid Unicode (_check_text)."""
    fields, uploads = _parse(request)
    _check_text(fields, uploads)
    return fields, uploads


def _parse(request) -> tuple[dict, dict]:
    ctype = request.content_type or ""
    try:
        if ctype == "application/json":
            if len(request.body) > settings.API_JSON_MAX_BYTES:
                raise ApiError(413, f"The request body is over {settings.API_JSON_MAX_BYTES} bytes.",
                               code="request_too_large")
            try:
                fields = json.loads(request.body or b"{}")
            except ValueError:
                raise invalid("We could not parse the JSON body of your request.", code="invalid_json") from None
            if not isinstance(fields, dict):
                raise invalid("The JSON body must be an object.", code="invalid_json")
            return fields, {}
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            fields = {k: request.POST.get(k) for k in request.POST}
            uploads = {"image": request.FILES.getlist("image") + request.FILES.getlist("image[]"),
                       "mask": request.FILES.getlist("mask")}
            extra = set(request.FILES) - {"image", "image[]", "mask"}
            if extra:
                name = sorted(extra)[0]
                raise invalid(f"Unrecognized file field: {text.shown(name[:60])} (images go in `image`, the mask in "
                              "`mask`).", text.shown(name[:60]), "unknown_parameter")
            return fields, uploads
    except (RequestDataTooBig, TooManyFieldsSent):
        raise ApiError(413, "The request is too large.", code="request_too_large") from None
    raise invalid("Send the request as application/json or multipart/form-data.", code="invalid_content_type")


def _check_text(fields: dict, uploads: dict) -> None:
    """Text that is not valid Unicode (a lone surrogate: JSON's "\\ud800"
    escape) or holds a NUL is a 400 naming the parameter, before anything
    is made (RELIABILITY 11; the rule is lib/text.py). Also the names of
    the parameters and the uploads' file names."""
    found = text.first_problem(fields)
    if found is not None:
        where = found.where()
        if found.is_key:
            raise invalid(f"The parameter name `{where}` {found.problem}.", where, "invalid_value")
        raise invalid(f"Invalid value for `{where}`: the text {found.problem}.", where, "invalid_value")
    for field, files in uploads.items():
        for upload in files:
            bad = text.problem(upload.name or "")
            if bad:
                raise invalid(f"Invalid file name for `{field}`: {text.shown(upload.name)!r} {bad}.", field,
                              "invalid_value")


def _start(request, endpoint: str) -> tuple[int, list[int]]:
    """Check everything, then make the generations (one transaction): the
    request's ApiRequest id and its generation ids."""
    token = _auth(request)
    fields, uploads = _read(request)
    resolved = catalog.resolve(token, fields.get("model"))
    plan = mapping.plan(resolved, endpoint, fields, uploads)
    params, inputs = dict(plan.params), []
    for name, img in plan.images.items():  # stored as the form stores them
        inputs.append(InputImage.from_checked(team=token.team, owner=token.user, img=img))
        params[name] = str(inputs[-1].uuid)
    try:
        with transaction.atomic():
            gens = [create.create(team=token.team, owner=token.user, provider=resolved.provider, model=resolved.model,
                                params=params, api_token=token) for _ in range(plan.jobs)]
            req = ApiRequest.objects.create(token=token, team=token.team, response_format=plan.response_format)
            req.generations.set(gens)
    except (BudgetExceeded, ProviderError) as e:
        for inp in inputs:  # nothing was made with them
            inp.file.delete(save=False)
            inp.delete()
        if isinstance(e, BudgetExceeded):
            # OpenAI's answer when a quota is used up (not retried by its client).
            raise ApiError(429, e.message, type="insufficient_quota", code="insufficient_quota",
                           headers=NO_RETRY) from None
        param = plan.origin.get(e.field, e.field) if e.field else None
        raise invalid(e.message, param, "invalid_value") from None
    return req.pk, [g.pk for g in gens]


def _answer(request, req_pk: int, *, waited_out: bool):
    req = ApiRequest.objects.select_related("team").get(pk=req_pk)
    gens = _generations_of(req)
    if waited_out and any(g.is_active for g in gens):
        raise ApiError(504, _still_running(request, gens), type="server_error", code="timeout", headers=NO_RETRY)
    return _result(request, gens, req.response_format)


def _generations_of(req) -> list[Generation]:
    return list(req.generations.order_by("created_at", "pk").prefetch_related("images"))


def _still_running(request, gens) -> str:
    running = [g for g in gens if g.is_active]
    names = "; ".join(f"job {g.uuid} ({g.stage}): {request.build_absolute_uri(g.get_absolute_url())}"
                      for g in running)
    fetch = request.build_absolute_uri(reverse("api_job", args=[running[0].uuid]))
    return (f"The images were not ready after {settings.API_WAIT_SECONDS:g} s; the job keeps running and its "
            f"images will be in the team gallery. {names}. Fetch the result later with GET {fetch} "
            "(same bearer token).")


def _result(request, gens, response_format: str):
    """The OpenAI images response for finished generations: the images of
    those that succeeded, else the first failure as an error."""
    ok = [g for g in gens if g.status == Generation.SUCCEEDED]
    if not ok:
        raise _failure(request, next(g for g in gens if not g.is_active))
    data = []
    for g in ok:
        for img in g.images.all():
            data.append({"b64_json": _b64(img)} if response_format == "b64_json" else {"url": signed_url(request, img)})
    return JsonResponse({"created": int(min(g.created_at for g in gens).timestamp()), "data": data})


def _failure(request, gen) -> ApiError:
    where = f"(job {gen.uuid}: {request.build_absolute_uri(gen.get_absolute_url())})"
    if gen.status == Generation.CANCELED:
        return ApiError(500, f"The job was canceled in the playground {where}.", code="canceled", headers=NO_RETRY)
    message = f"{gen.error_message or 'The generation failed.'} {gen.error_hint} {where}".replace("  ", " ")
    status = FAILURE_STATUS.get(gen.error_kind, 500)
    if gen.error_kind == "content_blocked":
        return ApiError(400, message, code="content_policy_violation")
    return ApiError(status, message, param=(gen.error_field or None) if status == 400 else None,
                    code=gen.error_code or gen.error_kind or "generation_failed", headers=NO_RETRY)


def _b64(img: GenerationImage) -> str:
    with img.file.open("rb") as fh:
        return base64.b64encode(fh.read()).decode()


def signed_url(request, img: GenerationImage) -> str:
    """The playground's own URL of a stored image: signed, works without a
    login, expires after API_IMAGE_URL_SECONDS."""
    token = signing.dumps(str(img.uuid), salt=IMAGE_SALT, compress=False)
    return request.build_absolute_uri(reverse("api_image", args=[token]))


def signed_image(request, token):
    """An image by its signed URL. A tampered signature is a 404, an expired
    one a 403; the image is served as the gallery serves it (streamed, or a
    redirect to a short-lived object-store URL with MEDIA_SIGNED_REDIRECTS)."""
    try:
        ref = signing.loads(token, salt=IMAGE_SALT, max_age=settings.API_IMAGE_URL_SECONDS)
    except signing.SignatureExpired:
        return HttpResponseForbidden("This image link has expired.", content_type="text/plain")
    except signing.BadSignature:
        raise Http404("Invalid image link") from None
    try:
        img = get_object_or_404(GenerationImage.objects.select_related("generation"), uuid=ref)
    except ValidationError:
        raise Http404("Invalid image link") from None
    name = f"{img.generation.model}-{str(img.generation.uuid)[:8]}-{img.index}.{img.file.name.rsplit('.', 1)[-1]}"
    return file_response(img.file, img.content_type, filename=name, max_age=min(300, settings.API_IMAGE_URL_SECONDS))


# --- fetching a job later, listing models ----------------------------------------------------


async def job(request, uuid):
    return await sync_to_async(_json_view)(_job, request, uuid)


def _job(request, uuid):
    """GET /v1/images/jobs/<uuid>: a job a request timed out on (any of its
    generations' ids). Done: the same response the request would have had;
    still running: 202 with each job's state."""
    token = _auth(request)
    gen = Generation.objects.visible_to(token.user, token.team).filter(uuid=uuid).first()
    if gen is None:
        raise ApiError(404, f"No job {uuid} in your team.", code="not_found")
    req = gen.api_requests.first()
    gens = _generations_of(req) if req else [gen]
    response_format = request.GET.get("response_format") or (req.response_format if req else "url")
    if response_format not in mapping.RESPONSE_FORMATS:
        raise invalid("Supported values are: 'url' and 'b64_json'.", "response_format", "invalid_value")
    if any(g.is_active for g in gens):
        return JsonResponse({"id": str(uuid), "object": "image.job", "status": "in_progress", "jobs": [
            {"id": str(g.uuid), "status": g.status, "stage": g.stage,
             "url": request.build_absolute_uri(g.get_absolute_url())} for g in gens]}, status=202)
    return _result(request, gens, response_format)


async def models(request):
    return await sync_to_async(_json_view)(_models, request)


def _models(request):
    token = _auth(request)
    return JsonResponse({"object": "list", "data": catalog.listing(token)})


async def model(request, model):
    return await sync_to_async(_json_view)(_model, request, model)


def _model(request, model):
    token = _auth(request)
    found = next((m for m in catalog.listing(token) if m["id"] == model), None)
    if found is None:
        raise catalog.not_found(model[:200])
    return JsonResponse(found)


def unknown(request, rest=""):
    return ApiError(404, f"Invalid URL ({request.method} /v1/{rest[:200]})", code="unknown_url").response()


def _json_view(fn, request, *args):
    try:
        return fn(request, *args)
    except ApiError as e:
        return e.response()

