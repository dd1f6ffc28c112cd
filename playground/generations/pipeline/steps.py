"""The one entry point of the worker: advance claims a job and runs the
step it is due for (step), or a batch of like jobs in turn (run_batch)."""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings

from playground.providers.errors import ProviderError

from ..models import Generation
from ..retry import POLICY, RUNNING, Retry
from .calls import per_batch, poll, submit
from .lease import Heartbeat
from .results import fail, retry_later
from .timing import job_age

log = logging.getLogger("playground.jobs")


def advance(generation_id: int, holder: str | None = None, batch=None) -> str:
    """One step of a job. holder names this run (the task result's id) in
    the lease, so that its heartbeat and the sweep can tell it apart. batch
    (tasks.Batch, database task backend): after this job's step, run the
    steps of the more due jobs like it that it claims, each under its own
    task row's id; returns this job's result."""
    holder = holder or uuid.uuid4().hex
    # The claim first (one conditional update), then the claimed row: the
    # common case costs one read, not two.
    if not Generation.take(generation_id, holder=holder):
        gen = Generation.objects.filter(pk=generation_id).only("status").first()
        if gen is None or not gen.is_active:
            return "nothing to do"
        return "not due, or held by another worker"
    gen = Generation.objects.filter(pk=generation_id).select_related("team", "owner").first()
    if gen is None:  # pragma: no cover - deleted between the claim and the read
        return "nothing to do"
    more = []
    if batch is not None:
        claimed = batch.claim(gen)
        more = Generation.take_many(claimed)
        for pair in set(claimed) - set(more):
            batch.done(pair[1], "not due, or held by another worker")
    if not more:
        try:
            with Heartbeat(gen.pk, holder):
                return step(gen)
        finally:
            if batch is not None:
                batch.flush()
    per_batch.endpoints = {}
    try:
        with Heartbeat(gen.pk, holder, more=more) as beat:
            result = run_batch(gen, more, batch, beat)
    finally:
        per_batch.endpoints = None
        batch.flush()
    return result


def run_batch(gen: Generation, more, batch, beat: Heartbeat) -> str:
    """This job's step, then those of the jobs the batch took, in turn. The
    rows' results are written together, or as they come once the batch has
    run for a third of a lease: the sweep takes a row still RUNNING after a
    lease, with no job held under it, for a dead worker's."""
    started = time.monotonic()
    result = step(gen)
    # The batch's jobs are read in one query (one each cost ~5 % of a worker's
    # CPU). They are held by this worker, and every change of state is a
    # conditional update, so a row that changed since (canceled, say) loses
    # its transition instead of acting on what was read.
    rows = None
    for pk, row_holder in more:
        if time.monotonic() - started > settings.JOB_LEASE_SECONDS / 3:
            batch.flush()
        try:
            if rows is None:
                rows = Generation.objects.select_related("team", "owner").in_bulk([p for p, _ in more])
            other = rows.get(pk)
            value = step(other) if other is not None else "nothing to do"
        except Exception as e:  # step() keeps its job safe; this is the read before it
            log.exception("generation %s: batched step failed", pk)
            # Left held: the sweep resumes it once its lease runs out.
            beat.release((pk, row_holder))
            batch.done(row_holder, error=e)
        else:
            batch.done(row_holder, value)
    return result


def step(gen: Generation) -> str:
    """The step a claimed job is due for."""
    try:
        if gen.status == Generation.QUEUED:
            return submit(gen)
        if gen.status == Generation.SUBMITTING:
            return fail(gen, Generation.SUBMITTING, ProviderError(
                "unknown_outcome",
                "The worker stopped while sending this job to the provider, so we cannot tell "
                "whether the provider received it.",
            ))
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
        return fail(gen, Generation.ACTIVE, err)
