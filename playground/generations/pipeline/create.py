"""A new job (create): its row, due at once, is its place in the queue
(pipeline.queue); its credits held against every budget it touches."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from playground.ledger import book

from ..models import Generation


def create(*, team, owner, provider: str, model: str, params: dict, client_token=None,
           visibility: str | None = None, remix_of: Generation | None = None,
           prompt_version_uuid=None, api_token=None) -> Generation:
    """A new job. client_token (one per form render) makes a double click or
    a resent POST create it once: the second call returns the first job.
    visibility defaults to the owner's preference in the team; remix_of and
    prompt_version_uuid record where it came from (lineage); api_token, the
    personal API token it came through (the OpenAI-compatible API)."""
    if client_token:
        existing = Generation.objects.filter(owner=owner, client_token=client_token).first()
        if existing:
            return existing
    from playground.providers import registry

    from ..models import InputImage

    spec = registry.get(provider).model(model)
    # Whoever calls (the form already checked), refuse now what the
    # declarations forbid, naming the field, rather than fail the job later;
    # and draw an empty seed here, so the job records (and sends) it.
    params = spec.with_random_defaults(params)
    spec.validate(params)
    refs = [params[p.name] for p in spec.image_params() if params.get(p.name)]
    source = (
        InputImage.objects.filter(team=team, uuid__in=refs, source__isnull=False).values_list("source", flat=True).first()
        if refs else None
    )
    # Worked out before the transaction: on SQLite it holds the one writer
    # lock that the workers' submits queue on.
    gen = Generation(
        team=team, owner=owner, provider=provider, model=model, params=params,
        cost_estimate=spec.estimate(params), source_image_id=source, is_adult=spec.is_adult(params),
        has_input=bool(refs),
        client_token=client_token, visibility=visibility or default_visibility(team, owner),
        remix_of=remix_of, prompt_version_uuid=prompt_version_uuid, api_token=api_token,
    )
    try:
        with transaction.atomic():  # the job (due now: queued) and its hold, or neither
            gen.save(force_insert=True)
            # Held against every budget it touches, or refused (BudgetExceeded):
            # then the job is rolled back and nothing is sent.
            gen.budget_warnings = book.reserve(gen)
    except IntegrityError:  # the same form, submitted twice at the same moment
        if not client_token:
            raise
        return Generation.objects.get(owner=owner, client_token=client_token)
    return gen


def default_visibility(team, owner) -> str:
    """The owner's default for new generations in this team (shared unless
    they chose private)."""
    from playground.accounts.models import Membership

    shared = Membership.objects.filter(team=team, user=owner).values_list("share_by_default", flat=True).first()
    return Generation.PRIVATE if shared is False else Generation.SHARED


def callback_url(gen: Generation) -> str:
    return settings.PUBLIC_BASE_URL + reverse("provider_callback", args=[gen.provider, gen.callback_token])
