"""Per-token request limits (a fixed one-minute window), held across every
web process: the count lives in the token's RateWindow row and moves only by
conditional updates, so two processes cannot both take the last request."""

from __future__ import annotations

from datetime import timedelta
import math

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import RateWindow

WINDOW = timedelta(minutes=1)


def limit_of(token) -> int:
    return token.rate_per_minute or settings.API_TOKEN_RATE_PER_MINUTE


def hit(token) -> float | None:
    """Count one request; None if allowed, else seconds until the window resets."""
    limit = limit_of(token)
    now = timezone.now()
    start = now.replace(second=0, microsecond=0)
    rows = RateWindow.objects.filter(token=token)
    for _ in range(3):
        if rows.filter(window_start=start, count__lt=limit).update(count=F("count") + 1):
            return None
        # A window that has passed starts again at 1, once (a second process sees the new start).
        if rows.filter(window_start__lt=start).update(window_start=start, count=1):
            return None
        if not rows.exists():
            try:
                with transaction.atomic():
                    RateWindow.objects.create(token=token, window_start=start, count=1)
                return None
            except IntegrityError:  # another process made it first: count in it
                continue
        if rows.filter(window_start=start, count__gte=limit).exists():
            break
    return max(1, math.ceil((start + WINDOW - now).total_seconds()))
