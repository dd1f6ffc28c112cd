"""A new job (create), and the queueing of a job's next step (enqueue,
next_step): what runs next and in which order."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from playground.ledger import book

from ..models import Generation
from ..tasks import enqueue_now_or_on_commit


def enqueue(gen: Generation, delay: float = 0.0, urgent: bool | None = None):
    """Queue the job's next step (after delay seconds). With a task backend
    that keeps its queue in this database, the task commits with the job's
    row (both or neither); with another engine (RQ on Redis) it is sent once
    the row is committed, so a worker never looks for a row it cannot see
    yet. If the process dies in between, the sweep finds the job overdue and
    queues it again.

    Order: a submit (a job still queued) or a callback's nudge is urgent and
    runs before every due poll (settings.TASK_PRIORITY_URGENT); an immediate
    step that is not urgent (a resumed job) gets run_after=now, so it takes
    its turn among the due polls instead of sorting after all of them."""
    return enqueue_now_or_on_commit(next_step(gen, delay, urgent), gen.pk)


def next_step(gen: Generation, delay: float = 0.0, urgent: bool | None = None):
    """The task that runs the job's next step, with its order (enqueue)."""
    from ..tasks import advance_generation

    task = advance_generation
    if urgent is None:
        urgent = gen.status == Generation.QUEUED
    options = {}
    if urgent:
        options["priority"] = urgent_priority(task)
    if delay > 0:
        options["run_after"] = timezone.now() + timedelta(seconds=delay)
    elif not urgent and isinstance(task.get_backend(), _db_backend()):
        # (django-tasks-db sorts "no run_after" after every dated task)
        options["run_after"] = timezone.now()
    if options:
        task = task.using(**options)
    return task


def _db_backend():
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:  # pragma: no cover - installed with the app
        return ()
    return DatabaseBackend


def urgent_priority(task) -> int:
    """The priority of submits and nudges, or the default when the backend
    has no priorities (its own order then applies)."""
    if not getattr(task.get_backend(), "supports_priority", False):
        return task.priority
    return settings.TASK_PRIORITY_URGENT


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
    first_step = next_step(gen)
    try:
        with transaction.atomic():  # the job and its first task, or neither
            gen.save(force_insert=True)
            # Held against every budget it touches, or refused (BudgetExceeded):
            # then the job is rolled back and nothing is sent.
            gen.budget_warnings = book.reserve(gen)
            enqueue_now_or_on_commit(first_step, gen.pk)
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
