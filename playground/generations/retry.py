"""The one retry policy of the job pipeline: which errors are tried again,
how many times, and how long to wait.

- Which: a refused submit (RETRYABLE kinds, and never one that may have
  reached the provider: resending could charge twice); a failed status call
  (POLL_RETRYABLE: asking again changes nothing at the provider); an
  internal error while the provider has the job; a result download that
  failed for a transient reason, or whose link expired (a fresh link is
  asked for, FRESH_URL_ATTEMPTS times).
- How many: JOB_MAX_RETRIES consecutive failures. A wait the provider asked
  for (a rate limit with a hint) is no failure and does not count, but the
  job's total life is bounded by JOB_RATE_LIMIT_MAX_WAIT_SECONDS.
- How long: the provider's hint if any (a rate limit's hint honoured even
  beyond the backoff cap), else exponential backoff capped at
  JOB_BACKOFF_CAP_SECONDS; plus jitter so that many jobs do not retry at the
  same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
import random

from django.conf import settings

from playground.providers.errors import POLL_RETRYABLE, RETRYABLE

from . import states

SUBMIT, POLL, RUNNING, DOWNLOAD = "submit", "poll", "running", "download"
# Result links expire: ask the provider for fresh ones this many times.
FRESH_URL_ATTEMPTS = 3


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds
    counts_as_attempt: bool
    reason: str  # a wait_reason: states.WAIT_RATE_LIMIT or states.WAIT_BACKOFF


@dataclass(frozen=True)
class GiveUp:
    why: str


class RetryPolicy:
    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random

    # -- which errors, how many times --
    def retries(self, error, attempts: int, stage: str, *, refetchable: bool = False) -> bool:
        """Whether this error, at this stage, after this many consecutive
        failures, is worth trying again. For DOWNLOAD, error is the
        DownloadError and refetchable says whether the provider can be asked
        for a fresh link (it has a job id and no kept synchronous result)."""
        max_retries = settings.JOB_MAX_RETRIES
        if stage == DOWNLOAD:
            if getattr(error, "expired", False) and refetchable and attempts < FRESH_URL_ATTEMPTS:
                return True
            return bool(getattr(error, "transient", False)) and attempts < max_retries
        if attempts >= max_retries:
            return False
        if stage == SUBMIT:
            return error.kind in RETRYABLE and not error.maybe_sent
        if stage == POLL:
            return error.kind in POLL_RETRYABLE
        if stage == RUNNING:  # an internal error while the provider has the job
            return True
        raise ValueError(f"unknown stage {stage!r}")

    # -- how long --
    def backoff(self, attempts: int, hint: float | None = None) -> float:
        """The provider's hint if any, else capped exponential; plus jitter."""
        cap = settings.JOB_BACKOFF_CAP_SECONDS
        base = hint if hint is not None else min(cap, settings.JOB_BACKOFF_BASE_SECONDS * (2 ** attempts))
        base = min(cap, base)
        return base + self.rng.uniform(0, max(0.1, base * 0.1))

    def local_rate_limit_wait(self, seconds: float) -> float:
        """Our own count of the provider's limit says wait this long: a little
        jitter so that the waiting jobs do not all go at the same instant."""
        return seconds + self.rng.uniform(0, 0.5)

    def wait(self, error, attempts: int, job_age: float) -> Retry | GiveUp:
        """How long to wait before trying again, once it is decided that the
        error retries. job_age: seconds since the job was created."""
        retry_after = getattr(error, "retry_after", None)
        rate_limited = getattr(error, "kind", "") == "rate_limited"
        reason = states.WAIT_RATE_LIMIT if rate_limited else states.WAIT_BACKOFF
        if rate_limited and retry_after is not None:
            # The provider said how long (an hour for Kwiki's hourly limit):
            # no failure, but bounded by the job's total waiting time.
            if job_age + retry_after > settings.JOB_RATE_LIMIT_MAX_WAIT_SECONDS:
                return GiveUp("the provider's wait is longer than a job may wait in total")
            return Retry(retry_after + self.rng.uniform(0, max(0.5, retry_after * 0.1)), False, reason)
        return Retry(self.backoff(attempts, retry_after), True, reason)

    def decide(self, error, attempts: int, job_age: float, stage: str, *,
               refetchable: bool = False) -> Retry | GiveUp:
        if not self.retries(error, attempts, stage, refetchable=refetchable):
            return GiveUp("not retryable" if attempts < settings.JOB_MAX_RETRIES else "too many attempts")
        return self.wait(error, attempts, job_age)


POLICY = RetryPolicy()
