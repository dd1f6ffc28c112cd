"""Hold each key's documented rate limits across all worker processes
(RELIABILITY 9), so that a burst of jobs waits its turn instead of hitting
the provider's 429.

A sliding log per bucket in the database, which every worker shares. The
bucket row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
IMMEDIATE transactions serialise writers) while a slot is counted and taken,
so two workers cannot both take the last slot.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from playground.accounts.models import bucket_id  # noqa: F401  (an Endpoint's bucket: ratelimit.bucket_id)

from .models import RateBucket, RateSlot


def acquire(bucket: str, limits) -> float | None:
    """Take a slot now and return None, or return seconds until one frees up."""
    if not limits:
        return None
    now = timezone.now()
    longest = max(seconds for _, seconds in limits)
    with transaction.atomic():
        RateBucket.objects.get_or_create(key=bucket)
        RateBucket.objects.select_for_update().get(key=bucket)
        RateSlot.objects.filter(bucket=bucket, at__lt=now - timedelta(seconds=longest)).delete()
        for count, seconds in limits:
            window = RateSlot.objects.filter(bucket=bucket, at__gte=now - timedelta(seconds=seconds))
            used = window.count()
            if used >= count:
                # The oldest slots that must expire before one is free again.
                oldest = window.order_by("at").values_list("at", flat=True)[used - count]
                return max(0.05, (oldest + timedelta(seconds=seconds) - now).total_seconds())
        RateSlot.objects.create(bucket=bucket, at=now)
    return None
