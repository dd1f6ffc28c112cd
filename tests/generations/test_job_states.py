"""One table of job states: transition() is the only writer of status and
refuses a move the table does not name; why a job waits is a field
(wait_reason), never read out of the phase text; one retry policy; and
pipeline.create checks params and draws the seed for every caller."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
import random

from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
import pytest

from playground.generations import states
from playground.generations.pipeline import callbacks, create
from playground.generations.models import Generation
from playground.generations.retry import DOWNLOAD, POLL, RUNNING, SUBMIT, GiveUp, Retry, RetryPolicy
from playground.lib.net.download import DownloadError
from playground.providers.errors import ProviderError

from tests.factories import job
from tests.helpers import step_job

PLAYGROUND = Path(__file__).resolve().parents[2] / "playground"
HTMX = {"HTTP_HX_REQUEST": "true"}


def card(client, gen) -> str:
    return client.get(reverse("generation", args=[gen.uuid]) + "?poll=1", **HTMX).content.decode()


# --- the table ---------------------------------------------------------------------------


def test_the_table_names_every_move_between_declared_states():
    declared = {value for value, _ in Generation.STATUSES}
    for move in states.MOVES:
        assert set(move.sources) <= declared and (move.target is None or move.target in declared), move
        assert move.reason
    # Every active state can end; a finished job never starts again, but for
    # the two named ways back from "failed" when the provider had the job.
    for s in states.ACTIVE:
        assert {states.FAILED} <= set(states.ALLOWED[s]), s
    assert states.SUCCEEDED not in states.ALLOWED and states.CANCELED not in states.ALLOWED
    assert states.ALLOWED[states.FAILED] == {states.RUNNING: ("rescue_after_lost_lease", "adopt_claimed_job")}
    rescue = states.TRANSITIONS["rescue_after_lost_lease"]
    assert (rescue.sources, rescue.target) == ((states.FAILED,), states.RUNNING)
    adopt = states.TRANSITIONS["adopt_claimed_job"]
    assert (set(adopt.sources), adopt.target) == ({states.SUBMITTING, states.FAILED}, states.RUNNING)


def test_an_illegal_move_raises_and_changes_nothing(team, user):
    gen = job(team, user, prompt="a wooden chair")
    with pytest.raises(states.IllegalTransition):
        gen.transition(Generation.QUEUED, status=Generation.SUCCEEDED)  # never sent, never done
    with pytest.raises(states.IllegalTransition):
        gen.transition(Generation.QUEUED, via="finish")
    with pytest.raises(states.IllegalTransition):
        gen.transition(Generation.SUCCEEDED, status=Generation.RUNNING)
    with pytest.raises(states.IllegalTransition):
        gen.transition(Generation.RUNNING, via="no such move")
    with pytest.raises(states.IllegalTransition):
        gen.transition(Generation.RUNNING, via="send")  # "send" starts from queued only
    gen.refresh_from_db()
    assert gen.status == Generation.QUEUED
    # A legal move from a state the job is not in is no error: it just loses.
    assert gen.transition(Generation.RUNNING, via="finish") is False
    assert gen.transition(Generation.QUEUED, via="send") is True
    gen.refresh_from_db()
    assert gen.status == Generation.SUBMITTING


def raw_status_writes(source: str, filename: str = "x.py") -> list[str]:
    """Places in source that write a Generation's status without
    Generation.transition(): .update(status=...) / .create(status=...) /
    Model(status=...) on anything but the task-queue rows, .update(**kwargs)
    outside transition(), and `x.status = ...` outside an __init__."""
    tree = ast.parse(source, filename)
    found = []

    def root(node):
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return node.id if isinstance(node, ast.Name) else ""

    def visit(node, func=""):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                callee = child.func.attr if isinstance(child.func, ast.Attribute) else getattr(child.func, "id", "")
                keywords = {k.arg for k in child.keywords}
                if callee in ("update", "create", "get_or_create", "update_or_create", "Generation") \
                        and "status" in keywords and root(child.func) != "DBTaskResult":
                    found.append(f"{filename}:{child.lineno} {callee}(status=...)")
                if callee == "update" and None in keywords and func != "transition":
                    found.append(f"{filename}:{child.lineno} update(**...) outside transition()")
            if isinstance(child, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "status" and func != "__init__":
                        found.append(f"{filename}:{child.lineno} .status = ...")
            visit(child, name)

    visit(tree)
    return found


def test_the_detector_finds_raw_status_writes():
    assert raw_status_writes("Generation.objects.filter(pk=1).update(status='failed')")
    assert raw_status_writes("def f(gen):\n    gen.status = 'failed'\n    gen.save()")
    assert raw_status_writes("def f(**c):\n    Generation.objects.filter(pk=1).update(**c)")
    assert raw_status_writes("Generation.objects.create(team=t, status='running')")
    assert not raw_status_writes("DBTaskResult.objects.filter(id=1).update(status='FAILED')")
    assert not raw_status_writes("Generation.objects.filter(status='failed').count()")


def test_only_transition_writes_a_generations_status():
    found = []
    for path in sorted(PLAYGROUND.rglob("*.py")):
        rel = path.relative_to(PLAYGROUND)
        if rel.parts[0] == "sandbox" or "migrations" in rel.parts:
            continue  # the sandbox imitates providers; migrations fill fields of old rows
        found += raw_status_writes(path.read_text(), str(rel))
    assert found == []


# --- why a job waits ----------------------------------------------------------------------


def test_a_rate_limit_wait_is_a_wait_reason(client_in, sandbox, team, user):
    gen = job(team, user, prompt="a yellow wheelbarrow [429-once]")
    step_job(gen)
    gen.refresh_from_db()
    assert (gen.status, gen.wait_reason) == (Generation.QUEUED, states.WAIT_RATE_LIMIT)
    assert gen.due_at > timezone.now() and gen.lease_until is None and step_job(gen) == "not due"
    assert gen.stage == "waiting" and gen.note.startswith("waiting for rate limit, retrying in ")
    assert 'data-testid="note">waiting for rate limit, retrying in' in card(client_in, gen)


def test_an_error_backoff_is_a_wait_reason(client_in, sandbox, team, user):
    gen = job(team, user, prompt="a gate [500]")
    step_job(gen)
    gen.refresh_from_db()
    assert (gen.status, gen.wait_reason, gen.attempts) == (Generation.QUEUED, states.WAIT_BACKOFF, 1)
    assert gen.due_at > timezone.now() and gen.lease_until is None and step_job(gen) == "not due"
    assert gen.stage == "retrying" and "retrying in" in gen.note
    assert 'data-testid="note"' in card(client_in, gen)


def test_a_poll_is_a_wait_reason_and_a_callback_may_cut_it_short(sandbox, team, user):
    gen = job(team, user, prompt="a field of tulips")
    step_job(gen)
    gen.refresh_from_db()
    assert (gen.status, gen.wait_reason) == (Generation.RUNNING, states.WAIT_POLLING)
    assert gen.note == "" and gen.stage == gen.phase
    assert gen.due_at > timezone.now()
    assert callbacks.nudge(gen) is True
    gen.refresh_from_db()
    assert gen.due_at <= timezone.now()  # the poll is due at once


def test_the_phase_text_alone_does_not_make_a_job_wait(client_in, sandbox, team, user):
    """Card, note and callbacks read wait_reason: a phase that merely says
    "retrying in" is not a wait, and a wait whose phase says otherwise is."""
    gen = job(team, user, prompt="a small lighthouse")
    step_job(gen)
    later = timezone.now() + timedelta(seconds=120)
    Generation.objects.filter(pk=gen.pk).update(phase="Server error, retrying in 120 s", wait_reason="",
                                                due_at=later)
    gen.refresh_from_db()
    assert gen.note == "" and gen.stage != "retrying"
    assert 'data-testid="note"' not in card(client_in, gen)
    assert callbacks.nudge(gen) is True  # not a backoff: the callback makes it check now
    gen.refresh_from_db()
    assert gen.due_at <= timezone.now()

    Generation.objects.filter(pk=gen.pk).update(phase="Server error", wait_reason=states.WAIT_BACKOFF,
                                                due_at=later, nudged_at=None)
    gen.refresh_from_db()
    assert gen.stage == "retrying" and gen.note.startswith("Server error, retrying in ")
    assert 'data-testid="note">Server error, retrying in' in card(client_in, gen)
    assert callbacks.nudge(gen) is False  # a backoff is not cut short
    gen.refresh_from_db()
    assert gen.due_at == later


def test_the_migration_fills_wait_reason_of_active_rows_from_their_phase(team, user):
    from importlib import import_module

    from django.apps import apps

    fill = import_module("playground.generations.migrations.0002_wait_reason").fill_wait_reason
    rows = {
        "rate": (Generation.QUEUED, "waiting for rate limit, retrying in 30 s", states.WAIT_RATE_LIMIT),
        "backoff": (Generation.RUNNING, "Server error, retrying in 8 s", states.WAIT_BACKOFF),
        "poll": (Generation.RUNNING, "generating", states.WAIT_POLLING),
        "done": (Generation.FAILED, "Server error, retrying in 8 s", ""),
    }
    made = {}
    for key, (status, phase, _) in rows.items():
        gen = job(team, user, prompt="a paper boat")
        Generation.objects.filter(pk=gen.pk).update(status=status, phase=phase)
        made[key] = gen.pk
    fill(apps, None)
    for key, (_, _, reason) in rows.items():
        assert Generation.objects.get(pk=made[key]).wait_reason == reason, key


# --- one retry policy ------------------------------------------------------------------------


@pytest.fixture
def policy(settings):
    settings.JOB_MAX_RETRIES = 8
    settings.JOB_BACKOFF_BASE_SECONDS = 2.0
    settings.JOB_BACKOFF_CAP_SECONDS = 300.0
    settings.JOB_RATE_LIMIT_MAX_WAIT_SECONDS = 7200
    return RetryPolicy(random.Random(7))


@pytest.mark.parametrize("kind, maybe_sent, stage, retries", [
    ("rate_limited", False, SUBMIT, True),
    ("server_error", False, SUBMIT, True),
    ("unavailable", False, SUBMIT, True),
    ("unavailable", True, SUBMIT, False),  # may have reached the provider: never resent
    ("timeout", True, SUBMIT, False),
    ("auth", False, SUBMIT, False),
    ("validation", False, SUBMIT, False),
    ("insufficient_credits", False, SUBMIT, False),
    ("timeout", True, POLL, True),  # asking again changes nothing at the provider
    ("server_error", False, POLL, True),
    ("bad_response", False, POLL, False),
    ("internal", False, RUNNING, True),
])
def test_which_errors_are_retried(policy, kind, maybe_sent, stage, retries):
    decision = policy.decide(ProviderError(kind, "x", maybe_sent=maybe_sent), 0, 10, stage)
    assert isinstance(decision, Retry) is retries
    assert isinstance(policy.decide(ProviderError(kind, "x", maybe_sent=maybe_sent), 8, 10, stage), GiveUp)


def test_how_long_to_wait(policy):
    # Capped exponential backoff with jitter, counted as an attempt.
    first = policy.decide(ProviderError("server_error", "x"), 0, 10, SUBMIT)
    assert first.counts_as_attempt and first.reason == states.WAIT_BACKOFF and 2 <= first.delay <= 2.2
    late = policy.decide(ProviderError("server_error", "x"), 7, 10, POLL)
    assert 256 <= late.delay <= 256 * 1.1
    assert policy.backoff(20) <= 300 * 1.1
    # A provider's rate-limit hint is honoured beyond the cap and is no failure...
    hint = policy.decide(ProviderError("rate_limited", "x", retry_after=3000), 0, 10, SUBMIT)
    assert hint.reason == states.WAIT_RATE_LIMIT and not hint.counts_as_attempt and 3000 <= hint.delay <= 3300
    # ... up to the job's total waiting time.
    assert isinstance(policy.decide(ProviderError("rate_limited", "x", retry_after=3000), 0, 5000, SUBMIT), GiveUp)
    # A rate limit without a hint backs off like any error, but says why it waits.
    bare = policy.decide(ProviderError("rate_limited", "x"), 1, 10, SUBMIT)
    assert bare.reason == states.WAIT_RATE_LIMIT and bare.counts_as_attempt and 4 <= bare.delay <= 4.4


def test_download_failures(policy):
    expired, transient = DownloadError("gone", expired=True), DownloadError("503", transient=True)
    assert isinstance(policy.decide(expired, 2, 10, DOWNLOAD, refetchable=True), Retry)  # ask for a fresh URL
    assert isinstance(policy.decide(expired, 3, 10, DOWNLOAD, refetchable=True), GiveUp)  # three fresh URLs
    assert isinstance(policy.decide(expired, 0, 10, DOWNLOAD, refetchable=False), GiveUp)
    assert isinstance(policy.decide(transient, 7, 10, DOWNLOAD), Retry)
    assert isinstance(policy.decide(transient, 8, 10, DOWNLOAD), GiveUp)
    assert isinstance(policy.decide(DownloadError("not an image"), 0, 10, DOWNLOAD, refetchable=True), GiveUp)


# --- pipeline.create: checked params, a drawn seed ---------------------------------------------------


def test_create_refuses_bad_params_at_once_naming_the_field(team, user):
    with pytest.raises(ProviderError) as refused:
        create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                    params={"prompt": "a teapot", "image_size": "enormous"})
    assert (refused.value.kind, refused.value.field) == ("validation", "image_size")
    with pytest.raises(ProviderError) as missing:
        create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={})
    assert (missing.value.kind, missing.value.field) == ("validation", "prompt")
    assert not Generation.objects.exists() and not DBTaskResult.objects.exists()


def test_create_draws_an_empty_seed_for_any_caller_and_keeps_a_given_one(team, user):
    drawn = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a teapot"})
    assert isinstance(drawn.params["seed"], int) and 1 <= drawn.params["seed"] <= 2**31 - 1
    drawn.refresh_from_db()
    assert isinstance(drawn.params["seed"], int)  # recorded, so it is sent and shown
    kept = create.create(team=team, owner=user, provider="kie", model="seedream-v4",
                       params={"prompt": "a teapot", "seed": 42})
    assert kept.params["seed"] == 42
