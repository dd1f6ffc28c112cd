"""The job states and the one table of legal moves between them.

Generation.transition() is the only writer of a job's status: it checks
every move against TRANSITIONS and refuses (raises IllegalTransition) any
move the table does not name. A move may keep the status (a wait, a poll
scheduled, a cancel noted while the provider still works): those are in the
table too, so that every conditional update of a job's state is one of these.

Why an active job is waiting is a field of its own (wait_reason), never read
out of the human-readable phase text.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED, SUBMITTING, RUNNING = "queued", "submitting", "running"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
ACTIVE = (QUEUED, SUBMITTING, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELED)

# Why an active job is not being worked on right now.
WAIT_NONE = ""
WAIT_RATE_LIMIT = "rate_limit"  # our count of the provider's limit, or the provider's 429
WAIT_BACKOFF = "backoff"  # an error that is retried after a pause
WAIT_POLLING = "polling"  # the provider has it: we ask again at its cadence
WAIT_REASONS = [
    (WAIT_NONE, "Not waiting"),
    (WAIT_RATE_LIMIT, "Waiting for a rate limit"),
    (WAIT_BACKOFF, "Retrying after an error"),
    (WAIT_POLLING, "Provider still generating"),
]
# The waits a callback must not cut short (RELIABILITY 5).
RETRY_WAITS = (WAIT_RATE_LIMIT, WAIT_BACKOFF)


@dataclass(frozen=True)
class Move:
    name: str
    sources: tuple[str, ...]
    target: str | None  # None: the status stays what it was
    reason: str


MOVES = [
    Move("send", (QUEUED,), SUBMITTING, "committed before the provider is called (RELIABILITY 1)"),
    Move("wait_rate_limit", (QUEUED,), None, "our own count of the provider's limit says wait: nothing sent"),
    Move("retry_send", (SUBMITTING,), QUEUED, "the provider refused before any work: send again after a pause"),
    Move("accepted", (SUBMITTING,), RUNNING, "the provider's answer (job id or result) is saved"),
    Move("schedule_poll", (RUNNING,), None, "the provider still works: ask again later"),
    Move("retry_poll", (RUNNING,), None, "a status call or a download failed: try again after a pause"),
    Move("note_cancel", (SUBMITTING, RUNNING), None,
         "canceled after it was sent: still tracked, result and charge kept"),
    Move("cancel", (QUEUED,), CANCELED, "canceled before it was sent (or refused while being canceled)"),
    Move("finish", (RUNNING,), SUCCEEDED, "images stored and charged, in one transaction"),
    Move("fail", ACTIVE, FAILED, "the provider, the download or the playground failed for good"),
    Move("rescue_after_lost_lease", (FAILED,), RUNNING,
         "the provider answered after our lease ran out and another worker failed the job as unknown outcome: "
         "take it back rather than throw a paid result away"),
    Move("adopt_claimed_job", (SUBMITTING, FAILED), RUNNING,
         "a callback named the job id our lost submit answer had, and one status call confirmed it"),
]
TRANSITIONS: dict[str, Move] = {m.name: m for m in MOVES}

# state -> {next state: names of the moves that lead there}
ALLOWED: dict[str, dict[str, tuple[str, ...]]] = {}
for _m in MOVES:
    for _s in _m.sources:
        _to = _m.target or _s
        ALLOWED.setdefault(_s, {})
        ALLOWED[_s][_to] = ALLOWED[_s].get(_to, ()) + (_m.name,)


class IllegalTransition(Exception):
    pass


def check(sources, target: str | None, via: str | None = None) -> tuple[tuple[str, ...], str | None]:
    """Check a move against the table: every (from, to) pair must be legal,
    and with via, the named move must start from each from-state and lead
    where it says. Returns (from-states, target status or None to keep it)."""
    if isinstance(sources, str):
        sources = (sources,)
    sources = tuple(sources)
    if not sources:
        raise IllegalTransition("a move needs at least one from-state")
    if via is not None:
        move = TRANSITIONS.get(via)
        if move is None:
            raise IllegalTransition(f"no move named {via!r}")
        if target is None:
            target = move.target
        for s in sources:
            if s not in move.sources:
                raise IllegalTransition(f"{via} does not start from {s}")
            if (target or s) != (move.target or s):
                raise IllegalTransition(f"{via} leads from {s} to {move.target or s}, not {target}")
    for s in sources:
        if (target or s) not in ALLOWED.get(s, {}):
            raise IllegalTransition(f"no legal move from {s} to {target or s}")
    return sources, target
