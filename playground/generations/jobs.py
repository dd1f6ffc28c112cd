"""The job pipeline: queued -> submitting -> running -> succeeded / failed.

Rules (RELIABILITY 1-3):
- the status moves to "submitting" and is committed before the provider is
  called; the provider's job id is committed before the first poll;
- a job found in "submitting" after its lease ran out may have reached the
  provider: it is not sent again, it fails with that explanation;
- every state change is a conditional update: two workers, or a poll and a
  callback, cannot both finish a job;
- a worker never sleeps waiting for a provider: the next poll is a task with
  run_after; a recovery sweep re-enqueues jobs whose worker vanished;
- a worker holds its job with a short lease that a heartbeat renews while the
  step runs, so a worker that dies is replaced within about a minute;
- a callback is a hint: at most one status check per poll interval, and a
  job whose submit answer was lost adopts the job id a callback names only
  after one status call confirms it.
"""

from __future__ import annotations

from datetime import timedelta
import logging
import statistics
import threading
import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from playground.accounts.models import Endpoint
from playground.ledger import book
from playground.lib.crypto import CredentialError
from playground.lib.net.download import DownloadError, fetch
from playground.lib.images import check_image
from playground.providers.errors import POLL_RETRYABLE, ProviderError
from playground.providers.exchange import Outcome

from . import ratelimit, states
from .models import Generation, GenerationImage
from .retry import DOWNLOAD, POLICY, POLL, RUNNING, SUBMIT, GiveUp, Retry
from .tasks import enqueue_now_or_on_commit, jobs_with_ready_task, reap_dead_task_rows
from .thumbnails import thumbnail_name

log = logging.getLogger("playground.jobs")



def enqueue(gen: Generation, delay: float = 0.0, urgent: bool | None = None):
    """Queue the job's next step (after delay seconds). With a task backend
    that keeps its queue in this database, the task commits with the job's
    row (both or neither); with another engine (RQ on Redis) it is sent once
    the row is committed, so a worker never looks for a row it cannot see
    yet. If the process dies in between, the sweep finds the job overdue and
    queues it again.

    Order: a submit (a job still queued) or a callback's nudge is urgent and
    runs before every due poll (settings.TASK_PRIORITY_URGENT); an immediate
    step that is not urgent (a resumed job) gets run_after=now, so it takes
    its turn among the due polls instead of sorting after all of them."""
    return enqueue_now_or_on_commit(next_step(gen, delay, urgent), gen.pk)


def next_step(gen: Generation, delay: float = 0.0, urgent: bool | None = None):
    """The task that runs the job's next step, with its order (enqueue)."""
    from .tasks import advance_generation

    task = advance_generation
    if urgent is None:
        urgent = gen.status == Generation.QUEUED
    options = {}
    if urgent:
        options["priority"] = urgent_priority(task)
    if delay > 0:
        options["run_after"] = timezone.now() + timedelta(seconds=delay)
    elif not urgent and isinstance(task.get_backend(), _db_backend()):
        # (django-tasks-db sorts "no run_after" after every dated task)
        options["run_after"] = timezone.now()
    if options:
        task = task.using(**options)
    return task


def _db_backend():
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:  # pragma: no cover - installed with the app
        return ()
    return DatabaseBackend


def urgent_priority(task) -> int:
    """The priority of submits and nudges, or the default when the backend
    has no priorities (its own order then applies)."""
    if not getattr(task.get_backend(), "supports_priority", False):
        return task.priority
    return settings.TASK_PRIORITY_URGENT


def create(*, team, owner, provider: str, model: str, params: dict, client_token=None,
           visibility: str | None = None, remix_of: Generation | None = None,
           prompt_version_uuid=None, api_token=None) -> Generation:
    """A new job. client_token (one per form render) makes a double click or
    a resent POST create it once: the second call returns the first job.
    visibility defaults to the owner's preference in the team; remix_of and
    prompt_version_uuid record where it came from (lineage); api_token, the
    personal API token it came through (the OpenAI-compatible API)."""
    if client_token:
        existing = Generation.objects.filter(owner=owner, client_token=client_token).first()
        if existing:
            return existing
    from playground.providers import registry

    from .models import InputImage

    spec = registry.get(provider).model(model)
    # Whoever calls (the form already checked), refuse now what the
    # declarations forbid, naming the field, rather than fail the job later;
    # and draw an empty seed here, so the job records (and sends) it.
    params = spec.with_random_defaults(params)
    spec.validate(params)
    refs = [params[p.name] for p in spec.image_params() if params.get(p.name)]
    source = (
        InputImage.objects.filter(team=team, uuid__in=refs, source__isnull=False).values_list("source", flat=True).first()
        if refs else None
    )
    # Worked out before the transaction: on SQLite it holds the one writer
    # lock that the workers' submits queue on.
    gen = Generation(
        team=team, owner=owner, provider=provider, model=model, params=params,
        cost_estimate=spec.estimate(params), source_image_id=source, is_adult=spec.is_adult(params),
        has_input=bool(refs),
        client_token=client_token, visibility=visibility or default_visibility(team, owner),
        remix_of=remix_of, prompt_version_uuid=prompt_version_uuid, api_token=api_token,
    )
    first_step = next_step(gen)
    try:
        with transaction.atomic():  # the job and its first task, or neither
            gen.save(force_insert=True)
            # Held against every budget it touches, or refused (BudgetExceeded):
            # then the job is rolled back and nothing is sent.
            gen.budget_warnings = book.reserve(gen)
            enqueue_now_or_on_commit(first_step, gen.pk)
    except IntegrityError:  # the same form, submitted twice at the same moment
        if not client_token:
            raise
        return Generation.objects.get(owner=owner, client_token=client_token)
    return gen


def default_visibility(team, owner) -> str:
    """The owner's default for new generations in this team (shared unless
    they chose private)."""
    from playground.accounts.models import Membership

    shared = Membership.objects.filter(team=team, user=owner).values_list("share_by_default", flat=True).first()
    return Generation.PRIVATE if shared is False else Generation.SHARED


def callback_url(gen: Generation) -> str:
    return settings.PUBLIC_BASE_URL + reverse("provider_callback", args=[gen.provider, gen.callback_token])


def backoff(attempt: int, hint: float | None = None) -> float:
    """Seconds to wait (see retry.RetryPolicy.backoff)."""
    return POLICY.backoff(attempt, hint)


def job_age(gen: Generation) -> float:
    return (timezone.now() - gen.created_at).total_seconds()


def renew_lease(generation_id: int, holder: str) -> bool:
    """Extend the lease, only while this holder still has it."""
    now = timezone.now()
    return Generation.objects.filter(
        pk=generation_id, held_by=holder, lease_until__isnull=False, status__in=Generation.ACTIVE,
    ).update(lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS)) == 1


class Heartbeat:
    """While a step runs (a synchronous provider call may take minutes), a
    background thread renews the job's short lease every
    JOB_HEARTBEAT_SECONDS. A worker that dies stops renewing it, and the sweep
    resumes the job once the lease has run out. more: other (job id, holder)
    leases of the same run (a batch), renewed with it until each is released."""

    def __init__(self, generation_id: int, holder: str, more=()):
        self.held = [(generation_id, holder), *more]
        self.generation_id = generation_id
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        every = settings.JOB_HEARTBEAT_SECONDS
        if every and every > 0:
            self.thread = threading.Thread(target=self.run, args=(every,), daemon=True,
                                           name=f"lease-heartbeat-{self.generation_id}")
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def release(self, pair):
        """Stop renewing one of the leases."""
        try:
            self.held.remove(pair)
        except ValueError:
            pass

    def run(self, every: float):
        from django.db import connection

        try:
            while self.held and not self.stop.wait(every):
                for pair in list(self.held):
                    try:
                        if not renew_lease(*pair):
                            self.release(pair)  # released, finished, or taken over: nothing left to hold
                    except Exception:  # e.g. a locked database: try again next beat
                        log.warning("generation %s: lease heartbeat failed", pair[0], exc_info=True)
        finally:
            connection.close()  # this thread's own connection


# --- the one entry point of the worker ------------------------------------------


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
    _batch.endpoints = {}
    try:
        with Heartbeat(gen.pk, holder, more=more) as beat:
            result = run_batch(gen, more, batch, beat)
    finally:
        _batch.endpoints = None
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


def usable_endpoint(gen: Generation):
    """Where the job's requests go, checked (key decrypts, base URL allowed),
    or the ProviderError that says why they cannot go anywhere. Within a
    batch (advance), resolved once per team and provider."""
    cache = getattr(_batch, "endpoints", None)
    key = (gen.team_id, gen.provider)
    if cache is not None and key in cache:
        return cache[key]
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
    except CredentialError as e:
        endpoint = ProviderError("config", str(e))
    except ProviderError as e:
        endpoint = e
    if cache is not None:
        cache[key] = endpoint
    return endpoint


# What a batch of steps (advance) shares, per thread: the endpoints resolved.
_batch = threading.local()


def submit(gen: Generation) -> str:
    if gen.canceled_at:
        # Canceled while it was being sent, and the provider refused it: the
        # user does not want it, so it is not sent again.
        with transaction.atomic():
            if gen.transition(Generation.QUEUED, via="cancel", finished_at=timezone.now(), phase="", lease_until=None):
                book.release(gen, note="canceled")
        return "canceled"
    endpoint = usable_endpoint(gen)
    if isinstance(endpoint, ProviderError):
        return fail(gen, Generation.QUEUED, endpoint)
    adapter = endpoint.adapter()
    wait = ratelimit.acquire(endpoint.rate_bucket(), adapter.rate_limits)
    if wait is not None:
        # Our own count of the documented limit says no: wait, send nothing.
        delay = POLICY.local_rate_limit_wait(wait)
        if gen.transition(Generation.QUEUED, via="wait_rate_limit",
                          phase=f"waiting for rate limit, retrying in {delay:.0f} s",
                          wait_reason=states.WAIT_RATE_LIMIT,
                          due_at=timezone.now() + timedelta(seconds=delay), lease_until=None):
            enqueue(gen, delay)
        return f"rate limited locally for {delay:.0f}s"
    if not gen.transition(Generation.QUEUED, via="send", phase="submitting", endpoint_source=endpoint.source):
        return "lost the race to submit"
    try:
        hook = callback_url(gen) if adapter.callbacks else None
        outcome = adapter.submit(gen.model, gen.params, callback_url=hook, images=input_images(gen))
    except ProviderError as e:
        e = endpoint.scrubbed(e)
        decision = POLICY.decide(e, gen.attempts, job_age(gen), SUBMIT)
        if isinstance(decision, Retry):
            return retry_later(gen, Generation.SUBMITTING, e, back_to=Generation.QUEUED, decision=decision)
        if e.maybe_sent:
            e = ProviderError("unknown_outcome", f"{e.message} The request may have reached the provider.",
                              code=e.code)
        return fail(gen, Generation.SUBMITTING, e)
    except Exception as e:
        if adapter.requests_started:
            raise  # a request went out: step() fails it as "may have reached the provider"
        # Nothing was sent (RELIABILITY 11): say so, never "may have reached the provider".
        log.exception("generation %s: failed before anything was sent", gen.uuid)
        return fail(gen, Generation.SUBMITTING, ProviderError(
            "not_sent", f"Internal error in the playground before sending: {type(e).__name__}. Nothing was sent."))
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.image_bytes:
        outcome = stage_inline_images(gen, outcome)
    now = timezone.now()
    gen.submitted_at, gen.estimated_seconds = now, outcome.expected_seconds
    delay = poll_delay(gen, adapter)
    waiting = {} if outcome.finished else {"lease_until": None, "wait_reason": states.WAIT_POLLING}
    # The job id saved and its first poll queued in one commit: on SQLite one
    # turn of the writer lock instead of two. The poll's task is written in a
    # savepoint: if writing it fails, the job id is still committed (and the
    # sweep queues the overdue job again); a provider's job is never dropped
    # for the sake of its task row.
    first_poll = None if outcome.finished else next_step(gen, delay, urgent=False)
    with transaction.atomic():
        accepted = gen.transition(
            Generation.SUBMITTING, via="accepted", provider_job_id=outcome.job_id or "",
            submitted_at=now, estimated_seconds=outcome.expected_seconds,
            phase="submitted" if not outcome.finished else "downloading",
            result_urls=outcome.image_urls if outcome.state == "succeeded" else [],
            credits_used=outcome.credits_used,  # as reported, kept for a resumed download
            due_at=now + timedelta(seconds=delay), attempts=0,
            # Still generating: the job id saved and its first poll scheduled in
            # one update (as schedule_poll would, one write fewer).
            **waiting,
        )
        if accepted and first_poll is not None:
            try:
                with transaction.atomic():
                    enqueue_now_or_on_commit(first_poll, gen.pk)
            except DatabaseError:
                log.exception("generation %s: its first poll could not be queued; the sweep will", gen.pk)
    if accepted:
        if outcome.finished:
            return conclude(gen, outcome)
        return f"poll in {delay:.0f}s"
    if not rescue_after_lost_lease(gen, outcome, now):
        return "job changed while submitting"
    if outcome.finished:
        return conclude(gen, outcome)
    return schedule_poll(gen, delay=poll_delay(gen, adapter))


def rescue_after_lost_lease(gen: Generation, outcome: Outcome, now) -> bool:
    """The provider answered after our lease ran out, and the sweep already
    failed the job as "unknown outcome". Now the outcome is known: take the
    job back rather than throw a paid result away."""
    won = gen.transition(
        Generation.FAILED, via="rescue_after_lost_lease", where=Q(error_kind="unknown_outcome", provider_job_id=""),
        provider_job_id=outcome.job_id or "", submitted_at=now, finished_at=None,
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        error_kind="", error_code="", error_message="", error_field="", phase="downloading", lease_until=None,
        attempts=0, due_at=now, updated_at=now,
    )
    if won:
        log.warning("generation %s: the provider answered after the lease ran out; job taken back", gen.uuid)
        gen.refresh_from_db()
    return won


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
    successes plus a small margin; None without any. Cached briefly."""
    now = time.monotonic()
    hit = _expected.get((provider, model))
    if hit is not None and hit[0] > now:
        return hit[1]
    samples = list(
        Generation.objects.filter(provider=provider, model=model, provider_seconds__isnull=False)
        .order_by("-finished_at").values_list("provider_seconds", flat=True)[:settings.POLL_TIMING_SAMPLES]
    )
    value = None
    if samples:
        median = statistics.median(samples)
        value = median + max(0.5, median * settings.POLL_TIMING_MARGIN)
    if settings.POLL_TIMING_CACHE_SECONDS > 0:
        _expected[(provider, model)] = (now + settings.POLL_TIMING_CACHE_SECONDS, value)
    return value


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


STAGED = "staged:"


def stage_inline_images(gen: Generation, outcome: Outcome) -> Outcome:
    """Images returned inline (base64) are written to storage at once and
    referenced like URLs, so that a worker dying before the download step
    loses nothing: the next one picks them up from storage."""
    names = [
        default_storage.save(f"staging/{gen.uuid}/{i}.bin", ContentFile(data))
        for i, data in enumerate(outcome.image_bytes)
    ]
    return Outcome(outcome.state, job_id=outcome.job_id, credits_used=outcome.credits_used, raw=outcome.raw,
                   image_urls=list(outcome.image_urls) + [STAGED + n for n in names])


def _read(gen: Generation, url: str) -> bytes:
    if url.startswith(STAGED):
        name = url[len(STAGED):]
        # Only this job's own staging folder: a provider cannot name a path.
        if not name.startswith(f"staging/{gen.uuid}/") or ".." in name:
            raise DownloadError("Refused a staged image outside this job.")
        with default_storage.open(name, "rb") as fh:
            return fh.read()
    return fetch(url)


def input_images(gen: Generation) -> dict:
    """The job's input images as the adapter wants them."""
    out = {}
    for name, img in gen.input_images().items():
        if img is None:
            title = gen.spec.param(name).title
            raise ProviderError("validation", f"The input image for {title} no longer exists.", field=name)
        out[name] = img.as_input()
    return out


def schedule_poll(gen: Generation, phase: str | None = None, delay: float = 3.0, pending: bool = False) -> str:
    """pending: a status call just found the job still generating."""
    # A good status answer: the retry budget is for consecutive failures.
    now = timezone.now()
    changes = {"due_at": now + timedelta(seconds=delay), "lease_until": None, "attempts": 0,
               "wait_reason": states.WAIT_POLLING}
    if pending:
        changes["pending_seen_at"] = now
    if phase:
        changes["phase"] = phase
    next_poll = next_step(gen, delay, urgent=False)
    with transaction.atomic():  # the wait and its task in one commit (both or neither)
        if gen.transition(Generation.RUNNING, via="schedule_poll", **changes):
            enqueue_now_or_on_commit(next_poll, gen.pk)
            return f"poll in {delay:.0f}s"
    return "job changed"


def poll(gen: Generation) -> str:
    if gen.result_urls:  # a synchronous result whose download was interrupted
        return conclude(gen, Outcome("succeeded", image_urls=list(gen.result_urls), credits_used=gen.credits_used))
    if not gen.provider_job_id:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no job id."))
    endpoint = usable_endpoint(gen)
    if isinstance(endpoint, ProviderError):
        return fail(gen, Generation.RUNNING, endpoint)
    adapter = endpoint.adapter()
    try:
        outcome = adapter.check(gen.model, gen.provider_job_id)
    except ProviderError as e:
        decision = POLICY.decide(e, gen.attempts, job_age(gen), POLL)
        if isinstance(decision, Retry):
            return retry_later(gen, Generation.RUNNING, endpoint.scrubbed(e), decision=decision)
        return fail(gen, Generation.RUNNING, endpoint.scrubbed(e))
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    if outcome.finished:
        if outcome.state == "succeeded":
            gen.provider_seconds = provider_seconds(gen, outcome)
        return conclude(gen, outcome)
    gen.pending_seen_at = timezone.now()  # for poll_delay: asked once, not done
    if timezone.now() - (gen.submitted_at or gen.created_at) > timedelta(seconds=settings.JOB_MAX_SECONDS):
        return fail(gen, Generation.RUNNING, ProviderError(
            "timeout", f"The provider did not finish within {settings.JOB_MAX_SECONDS // 60} minutes."))
    return schedule_poll(gen, phase=outcome.state if outcome.state == "generating" else "submitted",
                         delay=poll_delay(gen, adapter), pending=True)


def retry_later(gen: Generation, from_status: str, err: ProviderError, back_to: str | None = None,
                decision: Retry | None = None) -> str:
    """Try again after the wait the retry policy gives (decision, when the
    caller already asked it), or fail when the policy gives up waiting."""
    if decision is None:
        decision = POLICY.wait(err, gen.attempts, job_age(gen))
    if isinstance(decision, GiveUp):
        return fail(gen, from_status, err)
    delay = decision.delay
    attempts = F("attempts") + 1 if decision.counts_as_attempt else F("attempts")
    if decision.reason == states.WAIT_RATE_LIMIT:
        phase = f"waiting for rate limit, retrying in {delay:.0f} s"
    else:
        phase = f"{err.message[:140].rstrip('.')}, retrying in {delay:.0f} s"
    if gen.transition(
        from_status, via="retry_send" if (back_to or from_status) != from_status else "retry_poll",
        status=back_to or from_status, phase=phase[:200], wait_reason=decision.reason, attempts=attempts,
        due_at=timezone.now() + timedelta(seconds=delay), lease_until=None,
    ):
        enqueue(gen, delay)
        return f"retry in {delay:.0f}s"
    return "job changed"


def conclude(gen: Generation, outcome: Outcome) -> str:
    if outcome.state == "failed":
        return fail(gen, Generation.RUNNING, outcome.error or ProviderError("failed", "The provider reports failure."))
    try:
        # Each image's thumbnail is made here from the same decoded pixels:
        # made later, it cost a second decode (docs/benchmarks.md).
        checked = [check_image(_read(gen, url)) for url in outcome.image_urls]
        checked += [check_image(data) for data in outcome.image_bytes]
    except DownloadError as e:
        refetchable = bool(gen.provider_job_id) and not gen.result_urls
        decision = POLICY.decide(e, gen.attempts, job_age(gen), DOWNLOAD, refetchable=refetchable)
        if isinstance(decision, GiveUp):
            return fail_paid_without_image(gen, outcome, e)
        # Result URLs expire: ask the provider again for fresh ones. Else the
        # provider has made (and charged for) the image: keep trying to fetch it.
        message = f"{e} Asking for a fresh URL." if e.expired and refetchable else str(e)
        return retry_later(gen, Generation.RUNNING, ProviderError("download", message), decision=decision)
    if not checked:
        return fail(gen, Generation.RUNNING, ProviderError("bad_response", "The provider returned no image."))
    return finish(gen, checked, outcome)


def finish(gen: Generation, checked, outcome: Outcome) -> str:
    # One folder per 256th of a team's jobs (by the job's uuid), made once,
    # not one per job: a new folder costs as much as a new file (a metadata
    # write; ~1 ms of kernel time each on some disks, more than all the SQL
    # of the step).
    folder = f"generations/{gen.team.uuid}/{gen.uuid.hex[:2]}"
    saved = []
    try:
        for i, img in enumerate(checked):
            stem = f"{folder}/{gen.uuid.hex}-{i}-{uuid.uuid4().hex[:8]}"
            name = default_storage.save(f"{stem}.{img.extension}", ContentFile(img.data))
            thumb = default_storage.save(thumbnail_name(name, img.thumb_extension), ContentFile(img.thumbnail))
            saved.append((i, img, name, thumb))
        # The move, the charge and the images' rows in one transaction.
        rows = [
            GenerationImage(
                generation=gen, index=i, file=name, thumbnail=thumb, content_type=img.content_type,
                width=img.width, height=img.height, bytes=len(img.data), sha256=img.sha256,
            )
            for i, img, name, thumb in saved
        ]
        with transaction.atomic():
            won = gen.transition(
                Generation.RUNNING, via="finish", phase="", finished_at=timezone.now(), lease_until=None,
                credits_used=outcome.credits_used if outcome.credits_used is not None else gen.cost_estimate,
                provider_seconds=gen.provider_seconds,
            )
            if won:
                book.capture(gen, outcome.credits_used)
                GenerationImage.objects.bulk_create(rows)
    except BaseException:
        _delete(saved)
        raise
    if not won:
        _delete(saved)
        return "another worker finished it"
    for url in outcome.image_urls:
        if url.startswith(STAGED):
            default_storage.delete(url[len(STAGED):])
    return "succeeded"


def _delete(saved):
    for _, _, name, thumb in saved:
        for n in filter(None, (name, thumb)):
            try:
                default_storage.delete(n)
            except OSError:
                pass


def fail_paid_without_image(gen: Generation, outcome: Outcome, e: DownloadError) -> str:
    """The provider made the image, and charged for it, but it could not be
    saved (its link expired, it was refused, too large...). The job fails, and
    the ledger records what the provider charged as "paid, no image", in the
    same transaction (one per generation, like any charge)."""
    if e.expired:
        err = ProviderError("download", "The result link expired before the image could be saved. "
                            "The provider charged for it (see Credits: paid, no image).", code="result_link_expired")
    else:
        err = ProviderError("download", f"The provider made the image but it could not be saved: {e} "
                            "The provider charged for it (see Credits: paid, no image).", code="image_not_saved")
    reported = outcome.credits_used if outcome.credits_used is not None else gen.credits_used
    with transaction.atomic():
        won = fail(gen, Generation.RUNNING, err, release=False) != "job changed"
        if won:
            book.capture(gen, reported, no_image=True)
    return f"failed: {err.kind} (paid, no image)" if won else "job changed"


def fail(gen: Generation, from_statuses, err: ProviderError, release: bool = True) -> str:
    """The job failed for good; its reservation is released in the same
    transaction (release=False: the caller captures what was paid instead)."""
    with transaction.atomic():
        won = gen.transition(
            from_statuses, via="fail", error_kind=err.kind, error_code=err.code[:60],
            error_message=err.message, error_field=err.field or "", phase="", finished_at=timezone.now(),
            lease_until=None,
        )
        if won and release:
            book.release(gen, note=f"failed: {err.kind}")
    available = (getattr(err, "details", None) or {}).get("credits_available")
    if available is not None:
        book.note_balance(gen.team, gen.provider, available)
    return f"failed: {err.kind}" if won else "job changed"


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
    from . import thumbnails

    thumbnails.sweep()
    reaped = reap_dead_task_rows()
    if reaped:
        log.warning("sweep: marked %d task(s) of dead workers as failed", reaped)
    return count


def resume_stale_claims(now) -> int:
    """Queue the adoption of every claim again that shows no progress for a
    lease (RELIABILITY 2): its task died during the status call, was lost,
    or the provider did not answer. A claimed job id is asked about until
    the provider says how the job ended, whatever dies in between. A
    duplicate is harmless: adopt() takes the job with a conditional update."""
    from .tasks import adopt_claimed_job, ready_task_args

    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    rows = list(
        Generation.objects.filter(ADOPTABLE, provider_job_id="").exclude(claimed_job_id="")
        .filter(Q(nudged_at__lt=stale) | Q(nudged_at__isnull=True)).values_list("pk", "nudged_at")[:500]
    )
    waiting = ready_task_args(adopt_claimed_job, [pk for pk, _ in rows])  # the workers are only behind
    count = 0
    for pk, at in rows:
        if pk in waiting:
            continue
        # One sweeper wins each: the claim's clock moves with the update.
        if Generation.objects.filter(pk=pk, nudged_at=at).exclude(claimed_job_id="").update(nudged_at=now) == 1:
            enqueue_adoption(pk)
            count += 1
    return count


def enqueue_adoption(generation_id: int):
    from .tasks import adopt_claimed_job

    return enqueue_now_or_on_commit(adopt_claimed_job.using(priority=urgent_priority(adopt_claimed_job)),
                                    generation_id)


def nudge(gen: Generation, body=None) -> bool:
    """A callback arrived. It is a hint (RELIABILITY 5): a running job checks
    with the provider soon, at most once per poll interval however often the
    callback is replayed, and nothing else changes. A job whose submit answer
    was lost (still "submitting", or failed as "unknown outcome") may adopt
    the job id the callback names, once a status call confirms it."""
    now = timezone.now()
    interval = timedelta(seconds=poll_floor(gen.adapter_class))
    # The conditional update on nudged_at lets one of many concurrent replays win.
    fresh = Q(nudged_at__isnull=True) | Q(nudged_at__lte=now - interval)
    if gen.status == Generation.RUNNING:
        # Not during a backoff (a replayed callback must not cut a rate-limit wait short).
        waiting = Q(wait_reason__in=states.RETRY_WAITS)
        if Generation.objects.filter(fresh, pk=gen.pk, status=Generation.RUNNING).exclude(waiting).update(
                due_at=now, nudged_at=now) == 1:
            enqueue(gen, urgent=True)
            return True
        return False
    if gen.provider_job_id or not _adoptable(gen):
        return False
    claimed = gen.adapter_class.parse_callback(body)
    if not claimed or len(claimed) > 200 or not claimed.isprintable() or Generation.objects.filter(
            provider=gen.provider, provider_job_id=claimed).exists():
        return False
    if Generation.objects.filter(fresh, ADOPTABLE, pk=gen.pk, provider_job_id="").update(
            claimed_job_id=claimed, nudged_at=now) == 1:
        enqueue_adoption(gen.pk)
        return True
    return False


# A job the provider may have although we never saved its job id.
ADOPTABLE = Q(status=Generation.SUBMITTING) | Q(status=Generation.FAILED, error_kind="unknown_outcome")


def _adoptable(gen: Generation) -> bool:
    return gen.status == Generation.SUBMITTING or (
        gen.status == Generation.FAILED and gen.error_kind == "unknown_outcome")


def adopt(generation_id: int, holder: str | None = None) -> str:
    """Confirm a job id that a callback claimed, with one status call, and
    adopt it: the job then finishes normally (image stored, one charge). An
    id the provider does not confirm changes nothing."""
    gen = Generation.objects.filter(pk=generation_id).first()
    if gen is None or not gen.claimed_job_id or gen.provider_job_id or not _adoptable(gen):
        return "nothing to adopt"
    claimed = gen.claimed_job_id
    try:
        endpoint = Endpoint.resolve(gen.team, gen.provider)
        endpoint.check_base_url()
        adapter = endpoint.adapter()
        outcome = adapter.check(gen.model, claimed)
        if outcome.job_id and outcome.job_id != claimed:
            raise ProviderError("bad_response", "The provider answered about another job.")
    except (CredentialError, ProviderError) as e:
        kind = getattr(e, "kind", "config")
        if kind in POLL_RETRYABLE:
            # The provider did not say (a timeout, a 5xx, a rate limit): the
            # claim stays, and the sweep asks again a lease from now.
            Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(nudged_at=timezone.now())
            log.warning("generation %s: could not confirm job %r yet (%s); asking again later",
                        gen.uuid, claimed[:60], kind)
            return "claim not confirmed yet"
        Generation.objects.filter(pk=gen.pk, claimed_job_id=claimed).update(claimed_job_id="")
        log.warning("generation %s: a callback named job %r, which the provider did not confirm (%s)",
                    gen.uuid, claimed[:60], kind)
        return "claim not confirmed"
    if outcome.error is not None:
        outcome.error = endpoint.scrubbed(outcome.error)
    now = timezone.now()
    holder = holder or uuid.uuid4().hex
    # Conditional: a worker still alive in "submitting" that saves its own
    # answer first wins, and then this changes nothing (one finish, one charge).
    if not gen.transition(
        (Generation.SUBMITTING, Generation.FAILED), via="adopt_claimed_job",
        where=ADOPTABLE & Q(provider_job_id="", claimed_job_id=claimed), provider_job_id=claimed, claimed_job_id="", submitted_at=gen.submitted_at or now,
        finished_at=None, error_kind="", error_code="", error_message="", error_field="",
        result_urls=outcome.image_urls if outcome.state == "succeeded" else [], credits_used=outcome.credits_used,
        phase="downloading" if outcome.state == "succeeded" else "submitted", attempts=0, due_at=now,
        lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS), held_by=holder, updated_at=now,
    ):
        return "job changed"
    log.warning("generation %s: adopted provider job %s named by a callback and confirmed", gen.uuid, claimed[:60])
    gen.refresh_from_db()
    with Heartbeat(gen.pk, holder):
        if outcome.state == "succeeded":
            return step(gen)  # downloads the confirmed result: no second status call
        if outcome.state == "failed":
            return conclude(gen, outcome)
        return schedule_poll(gen, delay=poll_delay(gen, adapter))
