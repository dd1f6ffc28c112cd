"""The recovery sweep: jobs nobody works on are queued again."""

from __future__ import annotations

from datetime import timedelta
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import Generation
from ..tasks import jobs_with_ready_task, reap_dead_task_rows
from .callbacks import resume_stale_claims
from .create import enqueue

log = logging.getLogger("playground.jobs")


def sweep() -> int:
    """Re-enqueue active jobs that nobody works on: held by a worker that
    stopped renewing its lease (it died), or overdue and not held (their task
    was lost). Duplicates are harmless: each step starts with a conditional
    claim. Then mark the task rows of dead workers as failed."""
    now = timezone.now()
    overdue = Generation.objects.filter(status__in=Generation.ACTIVE).filter(
        Q(lease_until__isnull=True, due_at__lt=now - timedelta(seconds=settings.JOB_SWEEP_GRACE_SECONDS))
        | Q(lease_until__lt=now, due_at__lte=now)
    )
    count = 0
    candidates = list(overdue.only("pk", "uuid", "status", "due_at", "lease_until")[:2000])
    # Not held and its step waiting in the queue: the workers are behind,
    # the job is not lost (re-enqueueing it would only add to the backlog).
    queued = jobs_with_ready_task([g.pk for g in candidates if g.lease_until is None])
    for gen in candidates:
        was_held = gen.lease_until is not None
        if not was_held and gen.pk in queued:
            continue
        if gen.transition(Generation.ACTIVE, via="resume", where=Q(due_at=gen.due_at, lease_until=gen.lease_until),
                          due_at=now, lease_until=None):
            if was_held:
                log.warning("generation %s: its worker stopped renewing the lease; resuming it", gen.uuid)
            enqueue(gen)
            count += 1
    if count:
        log.info("sweep: re-enqueued %d generation(s)", count)
    claims = resume_stale_claims(now)
    if claims:
        log.warning("sweep: asking the provider again about %d claimed job id(s)", claims)
    from .. import thumbnails

    thumbnails.sweep()
    reaped = reap_dead_task_rows()
    if reaped:
        log.warning("sweep: marked %d task(s) of dead workers as failed", reaped)
    return count
