"""The step a claimed job is due for: send it, confirm a job id a callback
named, ask the provider, or fail a send whose outcome is unknown."""

from __future__ import annotations

import logging

from playground.providers.errors import ProviderError

from ..models import Generation
from ..retry import POLICY, RUNNING, Retry
from .callbacks import adopt
from .calls import poll, submit
from .results import fail, retry_later
from .timing import job_age

log = logging.getLogger("playground.jobs")


def step(gen: Generation) -> str:
    """The step a claimed job (queue.claim) is due for. Whatever goes wrong,
    the job is never left held and a paid result never lost."""
    try:
        if gen.claimed_job_id and not gen.provider_job_id:
            done = adopt(gen)
            if done is not None:
                return done
        if gen.status == Generation.QUEUED:
            return submit(gen)
        if gen.status == Generation.SUBMITTING:
            return fail(gen, Generation.SUBMITTING, ProviderError(
                "unknown_outcome",
                "The worker stopped while sending this job to the provider, so we cannot tell "
                "whether the provider received it.",
            ))
        if gen.status != Generation.RUNNING:
            return "nothing to do"
        return poll(gen)
    except Exception as e:  # e.g. a full disk: never leave the job held, never lose a paid result
        log.exception("generation %s: unexpected error", gen.uuid)
        gen.refresh_from_db()
        err = ProviderError("internal", f"Internal error in the playground: {type(e).__name__}.")
        if gen.status == Generation.SUBMITTING:
            # The provider may have the job (and charge for it): never resend.
            return fail(gen, Generation.SUBMITTING, ProviderError(
                "unknown_outcome", f"{err.message} It happened while sending the job to the provider."))
        if gen.status == Generation.RUNNING:
            # The provider has the job: keep asking it, the result may still be saved.
            decision = POLICY.decide(err, gen.attempts, job_age(gen), RUNNING)
            if isinstance(decision, Retry):
                return retry_later(gen, Generation.RUNNING, err, decision=decision)
        if gen.status not in Generation.ACTIVE:
            return "nothing to do"
        return fail(gen, Generation.ACTIVE, err)
