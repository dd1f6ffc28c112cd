"""A provider callback is a hint (nudge); a job id it claims for a job
whose submit answer was lost is adopted once a status call confirms it
(adopt); the sweep asks again about claims that made no progress."""

from __future__ import annotations

from datetime import timedelta
import logging
import uuid

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from playground.accounts.models import Endpoint
from playground.lib.crypto import CredentialError
from playground.providers.errors import POLL_RETRYABLE, ProviderError

from .. import states
from ..models import Generation
from ..tasks import enqueue_now_or_on_commit
from .create import enqueue, urgent_priority
from .lease import Heartbeat
from .results import conclude, schedule_poll
from .steps import step
from .timing import poll_delay, poll_floor

log = logging.getLogger("playground.jobs")


def resume_stale_claims(now) -> int:
    """Queue the adoption of every claim again that shows no progress for a
    lease (RELIABILITY 2): its task died during the status call, was lost,
    or the provider did not answer. A claimed job id is asked about until
    the provider says how the job ended, whatever dies in between. A
    duplicate is harmless: adopt() takes the job with a conditional update."""
    from ..tasks import adopt_claimed_job, ready_task_args

    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    rows = list(
        Generation.objects.filter(ADOPTABLE, provider_job_id="").exclude(claimed_job_id="")
        .filter(Q(nudged_at__lt=stale) | Q(nudged_at__isnull=True)).values_list("pk", "nudged_at")[:500]
    )
    waiting = ready_task_args(adopt_claimed_job, [pk for pk, _ in rows])  # the workers are only behind
    count = 0
    for pk, at in rows:
        if pk in waiting:
            continue
        # One sweeper wins each: the claim's clock moves with the update.
        if Generation.objects.filter(pk=pk, nudged_at=at).exclude(claimed_job_id="").update(nudged_at=now) == 1:
            enqueue_adoption(pk)
            count += 1
    return count


def enqueue_adoption(generation_id: int):
    from ..tasks import adopt_claimed_job

    return enqueue_now_or_on_commit(adopt_claimed_job.using(priority=urgent_priority(adopt_claimed_job)),
                                    generation_id)


def nudge(gen: Generation, body=None) -> bool:
    """A callback arrived. It is a hint (RELIABILITY 5): a running job checks
    with the provider soon, at most once per poll interval however often the
    callback is replayed, and nothing else changes. A job whose submit answer
    was lost (still "submitting", or failed as "unknown outcome") may adopt
    the job id the callback names, once a status call confirms it."""
    now = timezone.now()
    interval = timedelta(seconds=poll_floor(gen.adapter_class))
    # The conditional update on nudged_at lets one of many concurrent replays win.
    fresh = Q(nudged_at__isnull=True) | Q(nudged_at__lte=now - interval)
    if gen.status == Generation.RUNNING:
        # Not during a backoff (a replayed callback must not cut a rate-limit wait short).
        waiting = Q(wait_reason__in=states.RETRY_WAITS)
        if Generation.objects.filter(fresh, pk=gen.pk, status=Generation.RUNNING).exclude(waiting).update(
                due_at=now, nudged_at=now) == 1:
            enqueue(gen, urgent=True)
            return True
        return False
    if gen.provider_job_id or not _adoptable(gen):
        return False
    claimed = gen.adapter_class.parse_callback(body)
    if not claimed or len(claimed) > 200 or not claimed.isprintable() or Generation.objects.filter(
            provider=gen.provider, provider_job_id=claimed).exists():
        return False
    if Generation.objects.filter(fresh, ADOPTABLE, pk=gen.pk, provider_job_id="").update(
            claimed_job_id=claimed, nudged_at=now) == 1:
        enqueue_adoption(gen.pk)
        return True
    return False


# A job the provider may have although we never saved its job id.
ADOPTABLE = Q(status=Generation.SUBMITTING) | Q(status=Generation.FAILED, error_kind="unknown_outcome")


def _adoptable(gen: Generation) -> bool:
    return gen.status == Generation.SUBMITTING or (
        gen.status == Generation.FAILED and gen.error_kind == "unknown_outcome")


def adopt(generation_id: int, holder: str | None = None) -> str:
    """Confirm a job id that a callback claimed, with one status call, and
    adopt it: the job then finishes normally (image stored, one charge). An
    id the provider does not confirm changes nothing."""
    gen = Generation.objects.filter(pk=generation_id).first()
    if gen is None or not gen.claimed_job_id or gen.provider_job_id or not _adoptable(gen):
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
            # claim stays, and the sweep asks again a lease from now.
            Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(nudged_at=timezone.now())
            log.warning("generation %s: could not confirm job %r yet (%s); asking again later",
                        gen.uuid, claimed[:60], kind)
            return "claim not confirmed yet"
        Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(claimed_job_id="")
        log.warning("generation %s: a callback named job %r, which the provider did not confirm (%s)",
                    gen.uuid, claimed[:60], kind)
        return "claim not confirmed"
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    now = timezone.now()
    holder = holder or uuid.uuid4().hex
    # Conditional: a worker still alive in "submitting" that saves its own
    # answer first wins, and then this changes nothing (one finish, one charge).
    if not gen.transition(
        (Generation.SUBMITTING, Generation.FAILED), via="adopt_claimed_job",
        where=ADOPTABLE & Q(provider_job_id="", claimed_job_id=claimed), provider_job_id=claimed, claimed_job_id="", submitted_at=gen.submitted_at or now,
        finished_at=None, error_kind="", error_code="", error_message="", error_field="",
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        phase="downloading" if outcome.state == "succeeded" else "submitted", attempts=0, due_at=now,
        lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS), held_by=holder, updated_at=now,
    ):
        return "job changed"
    log.warning("generation %s: adopted provider job %s named by a callback and confirmed", gen.uuid, claimed[:60])
    gen.refresh_from_db()
    with Heartbeat(gen.pk, holder):
        if outcome.state == "succeeded":
            return step(gen)  # downloads the confirmed result: no second status call
        if outcome.state == "failed":
            return conclude(gen, outcome)
        return schedule_poll(gen, delay=poll_delay(gen, adapter))
