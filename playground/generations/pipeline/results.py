"""The end of a job: its images checked and stored with the charge
(conclude, finish), a failure (fail), a retry after a wait (retry_later)
or the next poll (schedule_poll); inline images staged, input images read."""

from __future__ import annotations

from datetime import timedelta
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from playground.ledger import book
from playground.lib.images import check_image
from playground.lib.net.download import DownloadError, fetch
from playground.providers.errors import ProviderError
from playground.providers.exchange import Outcome

from .. import states
from ..models import Generation, GenerationImage
from ..retry import DOWNLOAD, POLICY, GiveUp, Retry
from ..thumbnails import thumbnail_name
from .timing import job_age


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


def schedule_poll(gen: Generation, phase: str | None = None, delay: float = 3.0, pending: bool = False) -> str:
    """pending: a status call just found the job still generating."""
    # A good status answer: the retry budget is for consecutive failures.
    now = timezone.now()
    changes = {"due_at": now + timedelta(seconds=delay), "lease_until": None, "attempts": 0,
               "wait_reason": states.WAIT_POLLING}
    if pending:
        changes["pending_seen_at"] = now
    if phase:
        changes["phase"] = phase
    if gen.transition(Generation.RUNNING, via="schedule_poll", **changes):
        return f"poll in {delay:.0f}s"
    return "job changed"


def retry_later(gen: Generation, from_status: str, err: ProviderError, back_to: str | None = None,
                decision: Retry | None = None) -> str:
    """Try again after the wait the retry policy gives (decision, when the
    caller already asked it), or fail when the policy gives up waiting."""
    if decision is None:
        decision = POLICY.wait(err, gen.attempts, job_age(gen))
    if isinstance(decision, GiveUp):
        return fail(gen, from_status, err)
    delay = decision.delay
    attempts = F("attempts") + 1 if decision.counts_as_attempt else F("attempts")
    if decision.reason == states.WAIT_RATE_LIMIT:
        phase = f"waiting for rate limit, retrying in {delay:.0f} s"
    else:
        phase = f"{err.message[:140].rstrip('.')}, retrying in {delay:.0f} s"
    if gen.transition(
        from_status, via="retry_send" if (back_to or from_status) != from_status else "retry_poll",
        status=back_to or from_status, phase=phase[:200], wait_reason=decision.reason, attempts=attempts,
        due_at=timezone.now() + timedelta(seconds=delay), lease_until=None,
    ):
        return f"retry in {delay:.0f}s"
    return "job changed"


def conclude(gen: Generation, outcome: Outcome) -> str:
    if outcome.state == "failed":
        return fail(gen, Generation.RUNNING, outcome.error or ProviderError("failed", "The provider reports failure."))
    try:
        # Each image's thumbnail is made here from the same decoded pixels:
        # made later, it cost a second decode (docs/benchmarks.md).
        checked = [check_image(_read(gen, url)) for url in outcome.image_urls]
        checked += [check_image(data) for data in outcome.image_bytes]
    except DownloadError as e:
        refetchable = bool(gen.provider_job_id) and not gen.result_urls
        decision = POLICY.decide(e, gen.attempts, job_age(gen), DOWNLOAD, refetchable=refetchable)
        if isinstance(decision, GiveUp):
            return fail_paid_without_image(gen, outcome, e)
        # Result URLs expire: ask the provider again for fresh ones. Else the
        # provider has made (and charged for) the image: keep trying to fetch it.
        message = f"{e} Asking for a fresh URL." if e.expired and refetchable else str(e)
        return retry_later(gen, Generation.RUNNING, ProviderError("download", message), decision=decision)
    if not checked:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no image."))
    return finish(gen, checked, outcome)


def finish(gen: Generation, checked, outcome: Outcome) -> str:
    # One folder per 256th of a team's jobs (by the job's uuid), made once,
    # not one per job: a new folder costs as much as a new file (a metadata
    # write; ~1 ms of kernel time each on some disks, more than all the SQL
    # of the step).
    folder = f"generations/{gen.team.uuid}/{gen.uuid.hex[:2]}"
    saved = []
    try:
        for i, img in enumerate(checked):
            stem = f"{folder}/{gen.uuid.hex}-{i}-{uuid.uuid4().hex[:8]}"
            name = default_storage.save(f"{stem}.{img.extension}", ContentFile(img.data))
            thumb = default_storage.save(thumbnail_name(name, img.thumb_extension), ContentFile(img.thumbnail))
            saved.append((i, img, name, thumb))
        # The move, the charge and the images' rows in one transaction.
        rows = [
            GenerationImage(
                generation=gen, index=i, file=name, thumbnail=thumb, content_type=img.content_type,
                width=img.width, height=img.height, bytes=len(img.data), sha256=img.sha256,
            )
            for i, img, name, thumb in saved
        ]
        with transaction.atomic():
            won = gen.transition(
                Generation.RUNNING, via="finish", phase="", finished_at=timezone.now(), lease_until=None,
                credits_used=outcome.credits_used if outcome.credits_used is not None else gen.cost_estimate,
                provider_seconds=gen.provider_seconds,
            )
            if won:
                book.capture(gen, outcome.credits_used)
                GenerationImage.objects.bulk_create(rows)
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
        for n in filter(None, (name, thumb)):
            try:
                default_storage.delete(n)
            except OSError:
                pass


def fail_paid_without_image(gen: Generation, outcome: Outcome, e: DownloadError) -> str:
    """The provider made the image, and charged for it, but it could not be
    saved (its link expired, it was refused, too large...). The job fails, and
    the ledger records what the provider charged as "paid, no image", in the
    same transaction (one per generation, like any charge)."""
    if e.expired:
        err = ProviderError("download", "The result link expired before the image could be saved. "
                            "The provider charged for it (see Credits: paid, no image).", code="result_link_expired")
    else:
        err = ProviderError("download", f"The provider made the image but it could not be saved: {e} "
                            "The provider charged for it (see Credits: paid, no image).", code="image_not_saved")
    reported = outcome.credits_used if outcome.credits_used is not None else gen.credits_used
    with transaction.atomic():
        won = fail(gen, Generation.RUNNING, err, release=False) != "job changed"
        if won:
            book.capture(gen, reported, no_image=True)
    return f"failed: {err.kind} (paid, no image)" if won else "job changed"


def fail(gen: Generation, from_statuses, err: ProviderError, release: bool = True) -> str:
    """The job failed for good; its reservation is released in the same
    transaction (release=False: the caller captures what was paid instead)."""
    with transaction.atomic():
        won = gen.transition(
            from_statuses, via="fail", error_kind=err.kind, error_code=err.code[:60],
            error_message=err.message, error_field=err.field or "", phase="", finished_at=timezone.now(),
            lease_until=None,
        )
        if won and release:
            book.release(gen, note=f"failed: {err.kind}")
    available = (getattr(err, "details", None) or {}).get("credits_available")
    if available is not None:
        book.note_balance(gen.team, gen.provider, available)
    return f"failed: {err.kind}" if won else "job changed"
