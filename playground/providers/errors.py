"""ProviderError, the one error of every provider, and its kinds: the
taxonomy (ERROR_KINDS, with the hint shown to the user), which kinds are
worth sending again (RETRYABLE, POLL_RETRYABLE), the HTTP status -> kind
mapping (kind_for_status) and the rate-limit wait (retry_hint,
parse_retry_after, DEFAULT_RETRY_AFTER)."""

from __future__ import annotations

# One taxonomy for all providers. "hint" is what the user can do about it.
ERROR_KINDS = {
    "auth": "Check the API key for this provider (team settings).",
    "validation": "Correct the highlighted field and submit again.",
    "insufficient_credits": "Top up the provider account, or pick a cheaper model.",
    "content_blocked": "The provider's moderation refused the prompt; rephrase it.",
    "rate_limited": "The provider asked us to slow down; the job retries by itself.",
    "unavailable": "The provider is unreachable or in maintenance; try again later.",
    "server_error": "The provider had an internal error; try again.",
    "timeout": "The provider did not answer in time.",
    "not_found": "The provider does not know this job or endpoint.",
    "failed": "The provider could not generate this image; try again or change the prompt.",
    "bad_response": "The provider answered with something we could not read.",
    "unknown_outcome": (
        "The request may have reached the provider, so it was not sent again "
        "(that could charge twice). Check the provider's dashboard, or retry."
    ),
    "download": "The result image could not be fetched or is not a valid image.",
    "config": "The provider credential or base URL could not be used; ask a team owner to check it.",
    "not_sent": (
        "Something failed inside the playground while preparing the request, so nothing was sent to the "
        "provider (and nothing charged); try again."
    ),
    "internal": (
        "Something failed inside the playground (not at the provider); the job was retried. "
        "The provider may still have charged for it: check its dashboard before retrying."
    ),
}

# Kinds where the request was refused before any work: safe to send again.
RETRYABLE = {"rate_limited", "unavailable", "server_error"}
# A status check changes nothing at the provider: these are worth repeating
# even when the request may have been received.
POLL_RETRYABLE = RETRYABLE | {"timeout"}


class ProviderError(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        details: dict | None = None,
    ):
        assert kind in ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code or kind
        self.field = field
        self.retry_after = retry_after
        # True when the request may have reached the provider (a read
        # timeout, a dropped connection): resending could charge twice.
        self.maybe_sent = maybe_sent
        self.details = details or {}

    @property
    def hint(self) -> str:
        return ERROR_KINDS[self.kind]

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE and not self.maybe_sent

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def kind_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status in (400, 422):
        return "validation"
    if status == 402:
        return "insufficient_credits"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status in (455, 502, 503, 504):
        return "unavailable"
    if status >= 500:
        return "server_error"
    return "bad_response"


def parse_retry_after(value: str | float | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a hint that may be seconds-from-now or an epoch."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(str(value)).timestamp()
        except (TypeError, ValueError):
            return None
        seconds = when - (now if now is not None else _now())
        return max(seconds, 0.0)
    if seconds > 1e9:  # an epoch timestamp, not a duration
        seconds -= now if now is not None else _now()
    return max(seconds, 0.0)


# Seconds to wait after a 429 that carries no hint (no retry_after in the
# body, no Retry-After or X-RateLimit-Reset header), the same for every
# provider: no contract gives a number (each says "wait, then retry" or
# "honour Retry-After", and the sandboxes always send a hint). 10 s lets a
# per-second or burst limit refill without holding a job back for long; a
# per-minute limit (Kwiki's 10/minute) is held by the job layer before
# sending (Adapter.rate_limits), so a hint-less 429 there is a surprise, and
# a repeated one waits again. A provider whose contract documents a wait sets
# Adapter.default_retry_after, with the reason in a comment.
DEFAULT_RETRY_AFTER = 10.0


def retry_hint(resp, body=None) -> float | None:
    """A 429's wait hint, wherever the provider put it: a body retry_after,
    or the Retry-After or X-RateLimit-Reset header (seconds or epoch)."""
    if isinstance(body, dict) and body.get("retry_after") not in (None, ""):
        hint = parse_retry_after(body.get("retry_after"))
        if hint is not None:
            return hint
    for header in ("Retry-After", "X-RateLimit-Reset"):
        hint = parse_retry_after(resp.headers.get(header))
        if hint is not None:
            return hint
    return None


def _now() -> float:
    import time

    return time.time()
