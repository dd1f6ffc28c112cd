"""When a job is polled next (poll_delay), how long the provider took
(provider_seconds), and the retry backoff."""

from __future__ import annotations

import statistics
import time

from django.conf import settings
from django.utils import timezone

from playground.providers import registry
from playground.providers.exchange import Outcome

from .. import ratelimit
from ..models import Generation
from ..retry import POLICY


def backoff(attempt: int, hint: float | None = None) -> float:
    """Seconds to wait (see retry.RetryPolicy.backoff)."""
    return POLICY.backoff(attempt, hint)


def job_age(gen: Generation) -> float:
    return (timezone.now() - gen.created_at).total_seconds()


def poll_floor(adapter) -> float:
    """The provider's documented cadence (POLL_SECONDS overrides it): no
    job of it is polled more often, but for the few short polls its key's
    budget allows just after a job's expected time (poll_delay)."""
    return settings.POLL_SECONDS if settings.POLL_SECONDS is not None else adapter.poll_seconds


def poll_delay(gen: Generation, adapter) -> float:
    """Seconds until the job's next status call (issue 10: ask first when
    the job is usually done, then briefly at short intervals, then back off;
    never more often than the provider allows).

    - When the job is expected done (expected_at: the provider's own
      estimate for this job, else its model's recent median), not sooner
      than the provider's cadence (poll_floor). A job the provider gave an
      estimate for is asked once before, at POLL_MIDWAY of it, so that its
      card shows the provider's stage ("generating") while it lasts.
    - Still generating at that time: every POLL_FAST_SECONDS for
      POLL_FAST_WINDOW of the expected time (at least 3 such polls), each
      taking a slot of the key's short-poll budget (POLL_FAST_BUDGET per
      POLL_FAST_BUDGET_SECONDS, held across all jobs and workers by
      ratelimit); without a slot, at the cadence.
    - Then at the cadence, and POLL_BACKOFF_AFTER cadences past the expected
      time less and less often, up to POLL_BACKOFF_MAX_SECONDS (at least
      that once a job has run over 2 minutes)."""
    floor = poll_floor(adapter)
    started = gen.submitted_at or gen.created_at
    elapsed = max(0.0, (timezone.now() - started).total_seconds()) if started else 0.0
    expected = expected_at(gen)
    if expected is not None and elapsed < expected:
        midway = expected * settings.POLL_MIDWAY
        if gen.estimated_seconds and gen.pending_seen_at is None and midway >= floor and elapsed < midway:
            return max(floor, midway - elapsed)  # a look mid-way: the provider's stage on the card
        return max(floor, expected - elapsed)  # when it is usually done
    late = elapsed - (expected or 0.0)
    if expected is not None and gen.pending_seen_at is not None and settings.POLL_FAST_SECONDS < floor \
            and late < max(expected * settings.POLL_FAST_WINDOW, 3 * settings.POLL_FAST_SECONDS) \
            and fast_poll_slot(gen, adapter):
        return settings.POLL_FAST_SECONDS  # just missed: briefly at short intervals
    delay = floor
    if late > settings.POLL_BACKOFF_AFTER * floor:
        delay = max(floor, min(settings.POLL_BACKOFF_MAX_SECONDS, late / settings.POLL_BACKOFF_AFTER))
    if elapsed > 120:
        delay = max(delay, settings.POLL_BACKOFF_MAX_SECONDS)
    return delay


def fast_poll_slot(gen: Generation, adapter) -> bool:
    """Take a slot of the key's short-interval poll budget (shared by all
    its jobs, in every worker process), or say there is none now."""
    limits = ((settings.POLL_FAST_BUDGET, settings.POLL_FAST_BUDGET_SECONDS),)
    if settings.POLL_FAST_BUDGET <= 0:
        return False
    key = ratelimit.bucket_id(gen.provider, str(getattr(adapter, "base_url", "") or ""),
                              str(getattr(adapter, "_api_key", "") or ""))
    return ratelimit.acquire(f"fastpoll:{key}"[:64], limits) is None


def expected_at(gen: Generation) -> float | None:
    """Seconds after the submit when the job is expected done: the
    provider's own estimate for it (plus POLL_ESTIMATE_MARGIN), else its
    model's recent median (expected_seconds), else None."""
    if gen.estimated_seconds:
        return gen.estimated_seconds + settings.POLL_ESTIMATE_MARGIN
    return expected_seconds(gen.provider, gen.model)


# (provider, model) -> (monotonic expiry, seconds or None), per process.
_expected: dict[tuple[str, str], tuple[float, float | None]] = {}


def expected_seconds(provider: str, model: str) -> float | None:
    """When a new job of this model is usually done, in seconds after its
    submit: the median provider time of its last POLL_TIMING_SAMPLES
    successes plus a small margin; without any, the model's declared typical
    time (None if it declares none). Cached briefly."""
    now = time.monotonic()
    hit = _expected.get((provider, model))
    if hit is not None and hit[0] > now:
        return hit[1]
    samples = list(
        Generation.objects.filter(provider=provider, model=model, provider_seconds__isnull=False)
        .order_by("-finished_at").values_list("provider_seconds", flat=True)[:settings.POLL_TIMING_SAMPLES]
    )
    if samples:
        median = statistics.median(samples)
        value = median + max(0.5, median * settings.POLL_TIMING_MARGIN)
    else:  # no history yet: the model's declared typical time
        value = declared_seconds(provider, model)
    if settings.POLL_TIMING_CACHE_SECONDS > 0:
        _expected[(provider, model)] = (now + settings.POLL_TIMING_CACHE_SECONDS, value)
    return value


def declared_seconds(provider: str, model: str) -> float | None:
    """The typical time the model's declaration gives (ModelSpec.typical_seconds)."""
    return getattr(registry.spec_or_removed(provider, model), "typical_seconds", None)


def provider_seconds(gen: Generation, outcome: Outcome) -> float | None:
    """How long the provider took on a job found finished now: as it reports
    (KIE's createTime/completeTime), else the middle of what our polls
    bracket (the last "still generating" and now), else the time to now."""
    reported = reported_seconds(outcome.raw)
    if reported is not None:
        return reported
    if not gen.submitted_at:
        return None
    upper = (timezone.now() - gen.submitted_at).total_seconds()
    lower = 0.0
    if gen.pending_seen_at and gen.pending_seen_at > gen.submitted_at:
        lower = (gen.pending_seen_at - gen.submitted_at).total_seconds()
    expected = expected_at(gen)
    if lower and (expected is None or lower >= expected):
        return (lower + upper) / 2
    # Done at the first ask at the usual time plus a margin (a look mid-way
    # before it says little): record it without the margin, or the median
    # would creep up by it job after job.
    return max(lower, upper - max(0.5, upper * settings.POLL_TIMING_MARGIN))


def reported_seconds(raw) -> float | None:
    """complete - create from a status answer that has both (epoch seconds
    or milliseconds, or ISO 8601), if plausible."""
    records = [raw] + ([raw["data"]] if isinstance(raw, dict) and isinstance(raw.get("data"), dict) else [])
    for record in records:
        if not isinstance(record, dict):
            continue
        start, end = _instant(record.get("createTime")), _instant(record.get("completeTime"))
        if start is not None and end is not None and 0 <= end - start < 86400:
            return end - start
    return None


def _instant(value) -> float | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        try:
            dt = parse_datetime(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt is not None and dt.tzinfo is not None:
            return dt.timestamp()
    return None
