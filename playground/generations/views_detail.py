"""A job's detail page: its card (the same partial the job column shows),
its images, parameters, input images, "copy as code" snippets and lineage
(where it came from, what was made from it); and cancel."""

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required

from .models import Generation
from .views_media import image_models
from .views_shared import generation_or_404, lazy, render_page, visible_generations


def _own_generation_or_404(request, uuid):
    """A generation this user may change (their own): a teammate's shared
    one is 404 here, as anything outside the team is."""
    return get_object_or_404(Generation.objects.owned_by(request.user, request.team).select_related("team"), uuid=uuid)


GENERATION = "generations/generation.html"


@team_required
def generation(request, uuid):
    gen = generation_or_404(request, uuid)
    context = _generation_context(request, gen)
    if not request.htmx:
        return render_page(request, GENERATION, context)
    # The card alone (htmx).
    return render_page(request, GENERATION, context, "card")


def card_context(request, gen) -> dict:
    """What a job card shows: the job, and whether it sits on its own detail page."""
    return {"gen": gen, "on_detail": not request.htmx or on_detail_page(request, gen)}


def _generation_context(request, gen) -> dict:
    """Everything the detail page shows; its card partial renders from the
    same context (and computes only what the card uses)."""
    return {
        **card_context(request, gen),
        "snippets": lazy(_snippets, gen), "inputs": lazy(_inputs_of, gen),
        "param_rows": lazy(_param_rows, gen), "image_models": lazy(image_models),
        "is_mine": gen.owner_id == request.user.pk,
        # ?reveal=1: an adult result shown unblurred without JS (this page only).
        "reveal": bool(request.GET.get("reveal")),
        "is_favorite": lazy(lambda: gen.favorites.filter(user_id=request.user.pk).exists()),
        "lineage": lazy(_lineage, request, gen),
    }


LINEAGE_CAP = 20


def _lineage(request, gen) -> dict:
    """Where the generation came from and what was made from it, as far as
    the viewer may see: a private generation of a teammate is left out."""
    visible = visible_generations(request).select_related("owner").prefetch_related("images")
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


def on_detail_page(request, gen) -> bool:
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
        return render_page(request, GENERATION, _generation_context(request, gen), "card")
    if result == "too late":
        messages.info(request, "The job had already finished.")
    return redirect(gen.get_absolute_url())
