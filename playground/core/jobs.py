"""The job pipeline: queued -> submitting -> running -> succeeded / failed.

Rules (RELIABILITY 1-3):
- the status moves to "submitting" and is committed before the provider is
  called; the provider's job id is committed before the first poll;
- a job found in "submitting" after its lease ran out may have reached the
  provider: it is not sent again, it fails with that explanation;
- every state change is a conditional update: two workers, or a poll and a
  callback, cannot both finish a job;
- a worker never sleeps waiting for a provider: the next poll is a task with
  run_after; a recovery sweep re-enqueues jobs whose worker vanished.
"""

from __future__ import annotations

from datetime import timedelta
import logging
import random
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from playground.providers.base import POLL_RETRYABLE, Outcome, ProviderError

from . import ratelimit
from .crypto import CredentialError
from .downloads import DownloadError, check_image, fetch
from .models import Charge, Endpoint, Generation, GenerationImage

log = logging.getLogger("playground.jobs")



def enqueue(gen: Generation, delay: float = 0.0):
    from .tasks import advance_generation

    task = advance_generation
    if delay > 0:
        task = task.using(run_after=timezone.now() + timedelta(seconds=delay))
    return task.enqueue(gen.pk)


def create(*, team, owner, provider: str, model: str, params: dict, client_token=None) -> Generation:
    """A new job. client_token (one per form render) makes a double click or
    a resent POST create it once: the second call returns the first job."""
    if client_token:
        existing = Generation.objects.filter(owner=owner, client_token=client_token).first()
        if existing:
            return existing
    from playground.providers import registry

    from .models import InputImage

    spec = registry.get(provider).model(model)
    refs = [params[p.name] for p in spec.image_params() if params.get(p.name)]
    source = (
        InputImage.objects.filter(team=team, uuid__in=refs, source__isnull=False).values_list("source", flat=True).first()
        if refs else None
    )
    try:
        with transaction.atomic():  # the job and its first task, or neither
            gen = Generation.objects.create(
                team=team, owner=owner, provider=provider, model=model, params=params,
                cost_estimate=spec.estimate(params), source_image_id=source, is_adult=spec.is_adult(params),
                client_token=client_token,
            )
            enqueue(gen)
    except IntegrityError:  # the same form, submitted twice at the same moment
        return Generation.objects.get(owner=owner, client_token=client_token)
    return gen


def callback_url(gen: Generation) -> str:
    return settings.PUBLIC_BASE_URL + reverse("provider_callback", args=[gen.provider, gen.callback_token])


def backoff(attempt: int, hint: float | None = None) -> float:
    """Seconds to wait: the provider's hint if any, else capped exponential;
    plus jitter so that many jobs do not retry at the same instant."""
    cap = settings.JOB_BACKOFF_CAP_SECONDS
    base = hint if hint is not None else min(cap, settings.JOB_BACKOFF_BASE_SECONDS * (2 ** attempt))
    base = min(cap, base)
    return base + random.uniform(0, max(0.1, base * 0.1))


# --- the one entry point of the worker ------------------------------------------


def advance(generation_id: int) -> str:
    gen = Generation.objects.filter(pk=generation_id).first()
    if gen is None or not gen.is_active:
        return "nothing to do"
    if not gen.claim():
        return "not due, or held by another worker"
    try:
        if gen.status == Generation.QUEUED:
            return submit(gen)
        if gen.status == Generation.SUBMITTING:
            return fail(gen, Generation.SUBMITTING, ProviderError(
                "unknown_outcome",
                "The worker stopped while sending this job to the provider, so we cannot tell "
                "whether the provider received it.",
            ))
        return poll(gen)
    except Exception as e:  # e.g. a full disk: never leave the job held, never lose a paid result
        log.exception("generation %s: unexpected error", gen.uuid)
        gen.refresh_from_db()
        err = ProviderError("internal", f"Internal error in the playground: {type(e).__name__}.")
        if gen.status == Generation.SUBMITTING:
            # The provider may have the job (and charge for it): never resend.
            return fail(gen, Generation.SUBMITTING, ProviderError(
                "unknown_outcome", f"{err.message} It happened while sending the job to the provider."))
        if gen.status == Generation.RUNNING and gen.attempts < settings.JOB_MAX_RETRIES:
            # The provider has the job: keep asking it, the result may still be saved.
            return retry_later(gen, Generation.RUNNING, err)
        return fail(gen, Generation.ACTIVE, err)


def submit(gen: Generation) -> str:
    if gen.canceled_at:
        # Canceled while it was being sent, and the provider refused it: the
        # user does not want it, so it is not sent again.
        gen.transition(Generation.QUEUED, status=Generation.CANCELED, finished_at=timezone.now(), phase="",
                       lease_until=None)
        return "canceled"
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
    except (CredentialError, ProviderError) as e:
        return fail(gen, Generation.QUEUED, e if isinstance(e, ProviderError) else ProviderError("config", str(e)))
    adapter = endpoint.adapter()
    wait = ratelimit.acquire(endpoint.rate_bucket(), adapter.rate_limits)
    if wait is not None:
        # Our own count of the documented limit says no: wait, send nothing.
        delay = wait + random.uniform(0, 0.5)
        if gen.transition(Generation.QUEUED, phase=f"waiting for rate limit, retrying in {delay:.0f} s",
                          due_at=timezone.now() + timedelta(seconds=delay), lease_until=None):
            enqueue(gen, delay)
        return f"rate limited locally for {delay:.0f}s"
    if not gen.transition(Generation.QUEUED, status=Generation.SUBMITTING, phase="submitting",
                          endpoint_source=endpoint.source):
        return "lost the race to submit"
    hook = callback_url(gen) if adapter.callbacks else None
    try:
        outcome = adapter.submit(gen.model, gen.params, callback_url=hook, images=input_images(gen))
    except ProviderError as e:
        e = endpoint.scrubbed(e)
        if e.retryable and gen.attempts < settings.JOB_MAX_RETRIES:
            return retry_later(gen, Generation.SUBMITTING, e, back_to=Generation.QUEUED)
        if e.maybe_sent:
            e = ProviderError("unknown_outcome", f"{e.message} The request may have reached the provider.",
                              code=e.code)
        return fail(gen, Generation.SUBMITTING, e)
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.image_bytes:
        outcome = stage_inline_images(gen, outcome)
    now = timezone.now()
    if not gen.transition(
        Generation.SUBMITTING, status=Generation.RUNNING, provider_job_id=outcome.job_id or "",
        submitted_at=now, phase="submitted" if not outcome.finished else "downloading",
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [],
        credits_used=outcome.credits_used,  # as reported, kept for a resumed download
        due_at=now + timedelta(seconds=poll_delay(gen, adapter)), attempts=0,
    ) and not rescue_after_lost_lease(gen, outcome, now):
        return "job changed while submitting"
    if outcome.finished:
        return conclude(gen, outcome)
    return schedule_poll(gen, delay=poll_delay(gen, adapter))


def rescue_after_lost_lease(gen: Generation, outcome: Outcome, now) -> bool:
    """The provider answered after our lease ran out, and the sweep already
    failed the job as "unknown outcome". Now the outcome is known: take the
    job back rather than throw a paid result away."""
    n = Generation.objects.filter(
        pk=gen.pk, status=Generation.FAILED, error_kind="unknown_outcome", provider_job_id="",
    ).update(
        status=Generation.RUNNING, provider_job_id=outcome.job_id or "", submitted_at=now, finished_at=None,
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        error_kind="", error_code="", error_message="", error_field="", phase="downloading", lease_until=None,
        attempts=0, due_at=now, updated_at=now,
    )
    if n:
        log.warning("generation %s: the provider answered after the lease ran out; job taken back", gen.uuid)
        gen.refresh_from_db()
    return n == 1


def poll_delay(gen: Generation, adapter) -> float:
    """The provider's cadence (POLL_SECONDS overrides it), slower for long jobs."""
    delay = settings.POLL_SECONDS if settings.POLL_SECONDS is not None else adapter.poll_seconds
    started = gen.submitted_at or gen.created_at
    if started and timezone.now() - started > timedelta(minutes=2):
        delay = max(delay, 15.0)
    return delay


STAGED = "staged:"


def stage_inline_images(gen: Generation, outcome: Outcome) -> Outcome:
    """Images returned inline (base64) are written to storage at once and
    referenced like URLs, so that a worker dying before the download step
    loses nothing: the next one picks them up from storage."""
    names = [
        default_storage.save(f"staging/{gen.uuid}/{i}.bin", ContentFile(data))
        for i, data in enumerate(outcome.image_bytes)
    ]
    return Outcome(outcome.state, job_id=outcome.job_id, credits_used=outcome.credits_used, raw=outcome.raw,
                   image_urls=list(outcome.image_urls) + [STAGED + n for n in names])


def _read(gen: Generation, url: str) -> bytes:
    if url.startswith(STAGED):
        name = url[len(STAGED):]
        # Only this job's own staging folder: a provider cannot name a path.
        if not name.startswith(f"staging/{gen.uuid}/") or ".." in name:
            raise DownloadError("Refused a staged image outside this job.")
        with default_storage.open(name, "rb") as fh:
            return fh.read()
    return fetch(url)


def input_images(gen: Generation) -> dict:
    """The job's input images as the adapter wants them."""
    out = {}
    for name, img in gen.input_images().items():
        if img is None:
            title = gen.spec.param(name).title
            raise ProviderError("validation", f"The input image for {title} no longer exists.", field=name)
        out[name] = img.as_input()
    return out


def schedule_poll(gen: Generation, phase: str | None = None, delay: float = 3.0) -> str:
    # A good status answer: the retry budget is for consecutive failures.
    changes = {"due_at": timezone.now() + timedelta(seconds=delay), "lease_until": None, "attempts": 0}
    if phase:
        changes["phase"] = phase
    if gen.transition(Generation.RUNNING, **changes):
        enqueue(gen, delay)
        return f"poll in {delay:.0f}s"
    return "job changed"


def poll(gen: Generation) -> str:
    if gen.result_urls:  # a synchronous result whose download was interrupted
        return conclude(gen, Outcome("succeeded", image_urls=list(gen.result_urls), credits_used=gen.credits_used))
    if not gen.provider_job_id:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no job id."))
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
    except (CredentialError, ProviderError) as e:
        return fail(gen, Generation.RUNNING, e if isinstance(e, ProviderError) else ProviderError("config", str(e)))
    adapter = endpoint.adapter()
    try:
        outcome = adapter.check(gen.model, gen.provider_job_id)
    except ProviderError as e:
        if e.kind in POLL_RETRYABLE and gen.attempts < settings.JOB_MAX_RETRIES:
            return retry_later(gen, Generation.RUNNING, endpoint.scrubbed(e))
        return fail(gen, Generation.RUNNING, endpoint.scrubbed(e))
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.finished:
        return conclude(gen, outcome)
    if timezone.now() - (gen.submitted_at or gen.created_at) > timedelta(seconds=settings.JOB_MAX_SECONDS):
        return fail(gen, Generation.RUNNING, ProviderError(
            "timeout", f"The provider did not finish within {settings.JOB_MAX_SECONDS // 60} minutes."))
    return schedule_poll(gen, phase=outcome.state if outcome.state == "generating" else "submitted",
                         delay=poll_delay(gen, adapter))


def retry_later(gen: Generation, from_status: str, err: ProviderError, back_to: str | None = None) -> str:
    attempts = F("attempts") + 1
    if err.kind == "rate_limited" and err.retry_after is not None:
        # The provider said how long: wait that long (an hour for Kwiki's hourly
        # limit), which is no failure. Bounded by the job's total waiting time.
        if timezone.now() + timedelta(seconds=err.retry_after) - gen.created_at > timedelta(
                seconds=settings.JOB_RATE_LIMIT_MAX_WAIT_SECONDS):
            return fail(gen, from_status, err)
        delay = err.retry_after + random.uniform(0, max(0.5, err.retry_after * 0.1))
        attempts = F("attempts")
    else:
        delay = backoff(gen.attempts, err.retry_after)
    if err.kind == "rate_limited":
        phase = f"waiting for rate limit, retrying in {delay:.0f} s"
    else:
        phase = f"{err.message[:140].rstrip('.')}, retrying in {delay:.0f} s"
    if gen.transition(
        from_status, status=back_to or from_status, phase=phase[:200], attempts=attempts,
        due_at=timezone.now() + timedelta(seconds=delay), lease_until=None,
    ):
        enqueue(gen, delay)
        return f"retry in {delay:.0f}s"
    return "job changed"


def conclude(gen: Generation, outcome: Outcome) -> str:
    if outcome.state == "failed":
        return fail(gen, Generation.RUNNING, outcome.error or ProviderError("failed", "The provider reports failure."))
    try:
        checked = [check_image(_read(gen, url)) for url in outcome.image_urls]
        checked += [check_image(data) for data in outcome.image_bytes]
    except DownloadError as e:
        if e.expired and gen.provider_job_id and not gen.result_urls and gen.attempts < 3:
            # Result URLs expire: ask the provider again for fresh ones.
            return retry_later(gen, Generation.RUNNING, ProviderError("download", f"{e} Asking for a fresh URL."))
        if e.transient and gen.attempts < settings.JOB_MAX_RETRIES:
            # The provider has made (and charged for) the image: keep trying to fetch it.
            return retry_later(gen, Generation.RUNNING, ProviderError("download", str(e)))
        return fail(gen, Generation.RUNNING, ProviderError("download", str(e)))
    if not checked:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no image."))
    return finish(gen, checked, outcome)


def finish(gen: Generation, checked, outcome: Outcome) -> str:
    folder = f"generations/{gen.team.uuid}/{gen.uuid}"
    saved = []
    try:
        for i, img in enumerate(checked):
            tag = uuid.uuid4().hex[:8]
            name = default_storage.save(f"{folder}/{i}-{tag}.{img.extension}", ContentFile(img.data))
            thumb = default_storage.save(f"{folder}/{i}-{tag}-thumb.webp", ContentFile(img.thumbnail))
            saved.append((i, img, name, thumb))
        with transaction.atomic():
            won = gen.transition(
                Generation.RUNNING, status=Generation.SUCCEEDED, phase="", finished_at=timezone.now(),
                lease_until=None, credits_used=outcome.credits_used if outcome.credits_used is not None else gen.cost_estimate,
            )
            if won:
                reported = outcome.credits_used is not None
                Charge.objects.create(
                    team_id=gen.team_id, user_id=gen.owner_id, generation=gen, provider=gen.provider, model=gen.model,
                    credits=outcome.credits_used if reported else gen.cost_estimate,
                    basis=Charge.REPORTED if reported else Charge.ESTIMATE,
                )
                GenerationImage.objects.bulk_create([
                    GenerationImage(
                        generation=gen, index=i, file=name, thumbnail=thumb, content_type=img.content_type,
                        width=img.width, height=img.height, bytes=len(img.data), sha256=img.sha256,
                    )
                    for i, img, name, thumb in saved
                ])
    except BaseException:
        _delete(saved)
        raise
    if not won:
        _delete(saved)
        return "another worker finished it"
    for url in outcome.image_urls:
        if url.startswith(STAGED):
            default_storage.delete(url[len(STAGED):])
    return "succeeded"


def _delete(saved):
    for _, _, name, thumb in saved:
        for n in (name, thumb):
            try:
                default_storage.delete(n)
            except OSError:
                pass


def fail(gen: Generation, from_statuses, err: ProviderError) -> str:
    won = gen.transition(
        from_statuses, status=Generation.FAILED, error_kind=err.kind, error_code=err.code[:60],
        error_message=err.message, error_field=err.field or "", phase="", finished_at=timezone.now(),
        lease_until=None,
    )
    return f"failed: {err.kind}" if won else "job changed"


def sweep() -> int:
    """Re-enqueue active jobs whose step is overdue and that nobody holds:
    their worker died, or their task was lost. Duplicates are harmless: each
    step starts with a conditional claim."""
    now = timezone.now()
    overdue = Generation.objects.filter(
        status__in=Generation.ACTIVE, due_at__lt=now - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS)
    ).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    count = 0
    for gen in overdue.only("pk", "due_at"):
        if Generation.objects.filter(pk=gen.pk, due_at=gen.due_at).update(due_at=now) == 1:
            enqueue(gen)
            count += 1
    if count:
        log.info("sweep: re-enqueued %d generation(s)", count)
    return count


def nudge(gen: Generation) -> bool:
    """A callback arrived: check with the provider soon. Changes nothing else."""
    if gen.status != Generation.RUNNING:
        return False
    # Not during a backoff (a replayed callback must not cut a rate-limit wait short).
    waiting = Q(phase__contains=", retrying in ")
    if Generation.objects.filter(pk=gen.pk, status=Generation.RUNNING).exclude(waiting).update(due_at=timezone.now()) == 1:
        enqueue(gen)
        return True
    return False
