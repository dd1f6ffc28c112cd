"""A provider callback is a hint (nudge): it makes the job due now. A job id
it claims for a job whose submit answer was lost is adopted once a status
call confirms it (adopt, a step of its own in the queue)."""

from __future__ import annotations

from datetime import timedelta
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from playground.accounts.models import Endpoint
from playground.providers import registry
from playground.lib.crypto import CredentialError
from playground.providers.errors import POLL_RETRYABLE, ProviderError

from .. import states
from ..models import Generation
from .queue import ADOPTABLE
from .results import conclude, schedule_poll
from .timing import poll_delay, poll_floor

log = logging.getLogger("playground.jobs")


def nudge_running(provider: str, token: str) -> bool:
    """A callback for a running job, in one conditional update found by its
    callback token: due now, at most once per poll interval, not during a
    backoff (a replayed callback must not cut a rate-limit wait short).
    False: not a running job that may be nudged now."""
    now = timezone.now()
    interval = timedelta(seconds=poll_floor(registry.get_or_removed(provider)))
    # The conditional update on nudged_at lets one of many concurrent replays win.
    fresh = Q(nudged_at__isnull=True) | Q(nudged_at__lte=now - interval)
    return Generation.objects.filter(fresh, provider=provider, callback_token=token, status=Generation.RUNNING) \
        .exclude(wait_reason__in=states.RETRY_WAITS).update(due_at=now, nudged_at=now) == 1


def nudge(gen: Generation, body=None) -> bool:
    """A callback arrived. It is a hint (RELIABILITY 5): a running job checks
    with the provider soon, at most once per poll interval however often the
    callback is replayed, and nothing else changes. A job whose submit answer
    was lost (still "submitting", or failed as "unknown outcome") may adopt
    the job id the callback names, once a status call confirms it."""
    if gen.status == Generation.RUNNING:
        return nudge_running(gen.provider, gen.callback_token)
    now = timezone.now()
    interval = timedelta(seconds=poll_floor(gen.adapter_class))
    # The conditional update on nudged_at lets one of many concurrent replays win.
    fresh = Q(nudged_at__isnull=True) | Q(nudged_at__lte=now - interval)
    if gen.provider_job_id or not _adoptable(gen):
        return False
    claimed = gen.adapter_class.parse_callback(body)
    if not claimed or len(claimed) > 200 or not claimed.isprintable() or Generation.objects.filter(
            provider=gen.provider, provider_job_id=claimed).exists():
        return False
    # Due now (queue.due_claims); a SUBMITTING job still held by a live
    # worker is claimed once that worker lets go of it.
    return Generation.objects.filter(fresh, ADOPTABLE, pk=gen.pk, provider_job_id="").update(
        claimed_job_id=claimed, nudged_at=now, due_at=now) == 1


def _adoptable(gen: Generation) -> bool:
    return gen.status == Generation.SUBMITTING or (
        gen.status == Generation.FAILED and gen.error_kind == "unknown_outcome")


def adopt(gen: Generation) -> str | None:
    """Confirm the job id a callback claimed for this claimed job, with one
    status call, and adopt it. None: adopted, the job is now RUNNING and its
    step goes on (a confirmed result is downloaded with no second status
    call). An id the provider does not confirm changes nothing; one it could
    not answer about yet is asked about again a lease from now."""
    if not gen.claimed_job_id or gen.provider_job_id or not _adoptable(gen):
        return "nothing to adopt"
    claimed = gen.claimed_job_id
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
        adapter = endpoint.adapter()
        outcome = adapter.check(gen.model, claimed)
        if outcome.job_id and outcome.job_id != claimed:
            raise ProviderError("bad_response", "The provider answered about another job.")
    except (CredentialError, ProviderError) as e:
        kind = getattr(e, "kind", "config")
        if kind in POLL_RETRYABLE:
            # The provider did not say (a timeout, a 5xx, a rate limit): the
            # claim stays, due again a lease from now.
            later = timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)
            Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(
                due_at=later, nudged_at=timezone.now(), lease_until=None)
            log.warning("generation %s: could not confirm job %r yet (%s); asking again later",
                        gen.uuid, claimed[:60], kind)
            return "claim not confirmed yet"
        Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(claimed_job_id="", lease_until=None)
        log.warning("generation %s: a callback named job %r, which the provider did not confirm (%s)",
                    gen.uuid, claimed[:60], kind)
        return "claim not confirmed"
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    now = timezone.now()
    # Conditional: a worker still alive in "submitting" that saves its own
    # answer first wins, and then this changes nothing (one finish, one charge).
    if not gen.transition(
        (Generation.SUBMITTING, Generation.FAILED), via="adopt_claimed_job",
        where=ADOPTABLE & Q(provider_job_id="", claimed_job_id=claimed), provider_job_id=claimed, claimed_job_id="",
        submitted_at=gen.submitted_at or now,
        finished_at=None, error_kind="", error_code="", error_message="", error_field="",
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        phase="downloading" if outcome.state == "succeeded" else "submitted", attempts=0, due_at=now, updated_at=now,
    ):
        return "job changed"
    log.warning("generation %s: adopted provider job %s named by a callback and confirmed", gen.uuid, claimed[:60])
    if outcome.state == "succeeded":
        return None  # the step downloads the confirmed result
    if outcome.state == "failed":
        return conclude(gen, outcome)
    return schedule_poll(gen, delay=poll_delay(gen, adapter))
