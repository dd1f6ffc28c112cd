"""The queue: the Generation row itself (docs/decisions/0001-job-queue.md).

A job is due when its due_at has passed and no live lease holds it. A
worker claims due rows in one short transaction (on PostgreSQL with
SELECT ... FOR UPDATE SKIP LOCKED, so that workers on several machines
never wait on each other's rows; on SQLite the transaction holds the one
writer lock) and sets their lease. Each step ends by setting the row's next
due_at, or finishing it, in the conditional update that is its transition;
a worker that dies leaves leases that run out, and its rows are due again.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Generation

# A job the provider may have although we never saved its job id, and for
# which a callback named one (callbacks.nudge): its adoption is due too.
ADOPTABLE = Q(status=Generation.SUBMITTING) | Q(status=Generation.FAILED, error_kind="unknown_outcome")


def free(now) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def due_steps(now):
    """Active jobs whose next step is due (index gen_due_active)."""
    return Generation.objects.filter(status__in=Generation.ACTIVE, due_at__lte=now).filter(free(now))


def due_claims(now):
    """Job ids named by a callback, due to be confirmed (index gen_pending_claim)."""
    return (Generation.objects.exclude(claimed_job_id="").filter(ADOPTABLE, provider_job_id="", due_at__lte=now)
            .filter(free(now)))


def claim(limit: int, holder: str, among: Q | None = None) -> list[Generation]:
    """Up to limit due jobs (among those `among` selects, if given), oldest
    due first, held by holder for a lease, read with their team and owner.
    A peek without a transaction first: an idle worker never takes the
    writer lock."""
    if limit <= 0:
        return []
    now = timezone.now()
    rows = []
    for due in (due_steps, due_claims):
        left = limit - len(rows)
        candidates = due(now) if among is None else due(now).filter(among)
        if left <= 0 or not candidates.exists():
            continue
        with transaction.atomic():
            ids = list(candidates.order_by("due_at").select_for_update(skip_locked=True)
                       .values_list("pk", flat=True)[:left])
            if not ids:
                continue
            lease = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
            Generation.objects.filter(pk__in=ids).filter(free(now)).update(
                lease_until=lease, held_by=holder[:64], updated_at=now)
            rows += Generation.objects.filter(pk__in=ids, held_by=holder[:64]).select_related("team", "owner") \
                .order_by("due_at")
    return rows


def renew(ids, holder: str) -> int:
    """Extend the leases this holder still has on these jobs (one update).
    A row whose step ended (lease cleared) or that another worker took once
    the lease had run out is left alone."""
    ids = list(ids)
    if not ids:
        return 0
    return Generation.objects.filter(pk__in=ids, held_by=holder[:64], lease_until__isnull=False).update(
        lease_until=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))

