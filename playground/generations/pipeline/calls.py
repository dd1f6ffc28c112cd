"""The provider calls of a step: submit (sent once) and poll, through the
job's endpoint (resolved once per team and provider within a batch)."""

from __future__ import annotations

from datetime import timedelta
import logging
import threading

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from playground.accounts.models import Endpoint
from playground.ledger import book
from playground.lib.crypto import CredentialError
from playground.providers.errors import ProviderError
from playground.providers.exchange import Outcome

from .. import ratelimit, states
from ..models import Generation
from ..retry import POLICY, POLL, SUBMIT, Retry
from .create import callback_url
from .results import conclude, fail, input_images, retry_later, schedule_poll, stage_inline_images
from .timing import job_age, poll_delay, provider_seconds

log = logging.getLogger("playground.jobs")


def usable_endpoint(gen: Generation):
    """Where the job's requests go, checked (key decrypts, base URL allowed),
    or the ProviderError that says why they cannot go anywhere. Within a
    claim (the worker's round), resolved once per team and provider."""
    cache = getattr(per_batch, "endpoints", None)
    key = (gen.team_id, gen.provider)
    if cache is not None and key in cache:
        return cache[key]
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
    except CredentialError as e:
        endpoint = ProviderError("config", str(e))
    except ProviderError as e:
        endpoint = e
    if cache is not None:
        cache[key] = endpoint
    return endpoint


# What the steps of one claim share (the worker sets it in each step's
# thread): the endpoints resolved, per team and provider.
per_batch = threading.local()


def submit(gen: Generation) -> str:
    if gen.canceled_at:
        # Canceled while it was being sent, and the provider refused it: the
        # user does not want it, so it is not sent again.
        with transaction.atomic():
            if gen.transition(Generation.QUEUED, via="cancel", finished_at=timezone.now(), phase="", lease_until=None):
                book.release(gen, note="canceled")
        return "canceled"
    endpoint = usable_endpoint(gen)
    if isinstance(endpoint, ProviderError):
        return fail(gen, Generation.QUEUED, endpoint)
    adapter = endpoint.adapter()
    wait = ratelimit.acquire(endpoint.rate_bucket(), adapter.rate_limits)
    if wait is not None:
        # Our own count of the documented limit says no: wait, send nothing.
        delay = POLICY.local_rate_limit_wait(wait)
        if gen.transition(Generation.QUEUED, via="wait_rate_limit",
                          phase=f"waiting for rate limit, retrying in {delay:.0f} s",
                          wait_reason=states.WAIT_RATE_LIMIT,
                          due_at=timezone.now() + timedelta(seconds=delay), lease_until=None):
            return f"rate limited locally for {delay:.0f}s"
        return "job changed"
    if not gen.transition(Generation.QUEUED, via="send", phase="submitting", endpoint_source=endpoint.source):
        return "lost the race to submit"
    try:
        hook = callback_url(gen) if adapter.callbacks else None
        outcome = adapter.submit(gen.model, gen.params, callback_url=hook, images=input_images(gen))
    except ProviderError as e:
        e = endpoint.scrubbed(e)
        decision = POLICY.decide(e, gen.attempts, job_age(gen), SUBMIT)
        if isinstance(decision, Retry):
            return retry_later(gen, Generation.SUBMITTING, e, back_to=Generation.QUEUED, decision=decision)
        if e.maybe_sent:
            e = ProviderError("unknown_outcome", f"{e.message} The request may have reached the provider.",
                              code=e.code)
        return fail(gen, Generation.SUBMITTING, e)
    except Exception as e:
        if adapter.requests_started:
            raise  # a request went out: step() fails it as "may have reached the provider"
        # Nothing was sent (RELIABILITY 11): say so, never "may have reached the provider".
        log.exception("generation %s: failed before anything was sent", gen.uuid)
        return fail(gen, Generation.SUBMITTING, ProviderError(
            "not_sent", f"Internal error in the playground before sending: {type(e).__name__}. Nothing was sent."))
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.image_bytes:
        outcome = stage_inline_images(gen, outcome)
    now = timezone.now()
    gen.submitted_at, gen.estimated_seconds = now, outcome.expected_seconds
    delay = poll_delay(gen, adapter)
    waiting = {} if outcome.finished else {"lease_until": None, "wait_reason": states.WAIT_POLLING}
    # The job id saved and its first poll scheduled in one update: the
    # provider's job is never dropped for the sake of anything else.
    accepted = gen.transition(
        Generation.SUBMITTING, via="accepted", provider_job_id=outcome.job_id or "",
        submitted_at=now, estimated_seconds=outcome.expected_seconds,
        phase="submitted" if not outcome.finished else "downloading",
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [],
        credits_used=outcome.credits_used,  # as reported, kept for a resumed download
        due_at=now + timedelta(seconds=delay), attempts=0,
        **waiting,
    )
    if accepted:
        if outcome.finished:
            return conclude(gen, outcome)
        return f"poll in {delay:.0f}s"
    if not rescue_after_lost_lease(gen, outcome, now):
        return "job changed while submitting"
    if outcome.finished:
        return conclude(gen, outcome)
    return schedule_poll(gen, delay=poll_delay(gen, adapter))


def rescue_after_lost_lease(gen: Generation, outcome: Outcome, now) -> bool:
    """The provider answered after our lease ran out, and another worker already
    failed the job as "unknown outcome". Now the outcome is known: take the
    job back rather than throw a paid result away."""
    won = gen.transition(
        Generation.FAILED, via="rescue_after_lost_lease", where=Q(error_kind="unknown_outcome", provider_job_id=""),
        provider_job_id=outcome.job_id or "", submitted_at=now, finished_at=None,
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        error_kind="", error_code="", error_message="", error_field="", phase="downloading", lease_until=None,
        attempts=0, due_at=now, updated_at=now,
    )
    if won:
        log.warning("generation %s: the provider answered after the lease ran out; job taken back", gen.uuid)
        gen.refresh_from_db()
    return won


def poll(gen: Generation) -> str:
    if gen.result_urls:  # a synchronous result whose download was interrupted
        return conclude(gen, Outcome("succeeded", image_urls=list(gen.result_urls), credits_used=gen.credits_used))
    if not gen.provider_job_id:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no job id."))
    endpoint = usable_endpoint(gen)
    if isinstance(endpoint, ProviderError):
        return fail(gen, Generation.RUNNING, endpoint)
    adapter = endpoint.adapter()
    try:
        outcome = adapter.check(gen.model, gen.provider_job_id)
    except ProviderError as e:
        decision = POLICY.decide(e, gen.attempts, job_age(gen), POLL)
        if isinstance(decision, Retry):
            return retry_later(gen, Generation.RUNNING, endpoint.scrubbed(e), decision=decision)
        return fail(gen, Generation.RUNNING, endpoint.scrubbed(e))
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.finished:
        if outcome.state == "succeeded":
            gen.provider_seconds = provider_seconds(gen, outcome)
        return conclude(gen, outcome)
    gen.pending_seen_at = timezone.now()  # for poll_delay: asked once, not done
    if timezone.now() - (gen.submitted_at or gen.created_at) > timedelta(seconds=settings.JOB_MAX_SECONDS):
        return fail(gen, Generation.RUNNING, ProviderError(
            "timeout", f"The provider did not finish within {settings.JOB_MAX_SECONDS // 60} minutes."))
    return schedule_poll(gen, phase=outcome.state if outcome.state == "generating" else "submitted",
                         delay=poll_delay(gen, adapter), pending=True)
