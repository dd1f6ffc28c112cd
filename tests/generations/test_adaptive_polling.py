"""Adaptive polling (issue 10): a job is first asked about when its model
usually finishes (the recent median of the provider's time), then at the
provider's cadence, then less and less often; never more often than the
provider's documented cadence."""

from datetime import timedelta

from django.utils import timezone
import pytest

from playground.generations.pipeline import timing
from playground.generations.models import Generation
from playground.providers.kie import KieAdapter

from tests import factories
from tests.helpers import run_tasks, step_job

KIE_CADENCE = KieAdapter.poll_seconds  # 5 s, documented


def finished_before(team, user, seconds, model="seedream-v4", n=5, provider="kie"):
    """n earlier successes of the model, the provider having taken these times."""
    seconds = seconds if isinstance(seconds, list) else [seconds] * n
    now = timezone.now()
    for i, s in enumerate(seconds):
        g = factories.job(team, user, provider, model, prompt=f"an orchard in spring {i}")
        Generation.objects.filter(pk=g.pk).update(
            status=Generation.SUCCEEDED, submitted_at=now - timedelta(minutes=10),
            finished_at=now - timedelta(minutes=5, seconds=i), provider_seconds=s)


def submitted_job(team, user, provider="kie", model="seedream-v4"):
    gen = factories.job(team, user, provider, model, prompt="a windmill by a canal")
    now = timezone.now()
    Generation.objects.filter(pk=gen.pk).update(status=Generation.RUNNING, submitted_at=now, provider_job_id="job-1")
    gen.refresh_from_db()
    return gen


@pytest.fixture
def cadence(settings):
    settings.POLL_SECONDS = None  # the providers' own cadence


@pytest.mark.django_db
def test_without_history_the_first_poll_is_at_the_models_declared_typical_time(team, user, cadence):
    """Not every 5 s until the model's time is learned (issue 26): the first
    job of a model is asked about when the model's declaration says such a
    job is usually done, then briefly at short intervals if it is not."""
    for model in ("seedream-v4", "gpt4o-image"):
        typical = KieAdapter.models[model].typical_seconds
        assert typical > KIE_CADENCE
        assert timing.poll_delay(submitted_job(team, user, model=model), KieAdapter) == pytest.approx(typical, abs=0.5)
    gen = submitted_job(team, user)
    Generation.objects.filter(pk=gen.pk).update(
        submitted_at=timezone.now() - timedelta(seconds=KieAdapter.models["seedream-v4"].typical_seconds + 1),
        pending_seen_at=timezone.now())
    gen.refresh_from_db()
    assert timing.poll_delay(gen, KieAdapter) < KIE_CADENCE  # still generating at its time: asked again soon


@pytest.mark.django_db
def test_a_model_that_declares_no_time_is_first_polled_at_the_provider_cadence(team, user, cadence, monkeypatch):
    import dataclasses

    spec = KieAdapter.models["seedream-v4"]
    monkeypatch.setitem(KieAdapter.models, "seedream-v4", dataclasses.replace(spec, typical_seconds=None))
    gen = submitted_job(team, user)
    assert timing.poll_delay(gen, KieAdapter) == pytest.approx(KIE_CADENCE)
    # once the team has its own successes, their median wins over any declaration
    finished_before(team, user, 7.0)
    assert 7.0 < timing.poll_delay(submitted_job(team, user), KieAdapter) <= 8.0


@pytest.mark.django_db
def test_the_first_poll_is_when_the_model_usually_finishes(team, user, cadence):
    finished_before(team, user, [10.0, 11.0, 11.0, 12.0, 30.0])  # median 11 s (one slow outlier)
    gen = submitted_job(team, user)
    delay = timing.poll_delay(gen, KieAdapter)
    assert 11.0 < delay <= 12.0  # just after the median, not at 5, 10, 15


@pytest.mark.django_db
def test_the_median_is_kept_per_model(team, user, cadence):
    finished_before(team, user, 20.0, model="seedream-v4")
    finished_before(team, user, 8.0, model="nano-banana")
    assert 20.0 < timing.poll_delay(submitted_job(team, user, model="seedream-v4"), KieAdapter) <= 21.5
    assert 8.0 < timing.poll_delay(submitted_job(team, user, model="nano-banana"), KieAdapter) <= 9.0


@pytest.mark.django_db
def test_a_fast_model_is_never_polled_before_the_cadence(team, user, cadence):
    finished_before(team, user, 1.0)  # the provider takes 1 s, its cadence is 5 s
    gen = submitted_job(team, user)
    assert timing.poll_delay(gen, KieAdapter) == pytest.approx(KIE_CADENCE)


@pytest.mark.django_db
def test_after_a_miss_it_polls_briefly_at_short_intervals_then_the_cadence_then_backs_off(team, user, cadence,
                                                                                      settings):
    finished_before(team, user, 11.0)  # expected done at 11.55 s
    gen = submitted_job(team, user)
    gen.pending_seen_at = timezone.now()  # asked once: still generating

    def delay_at(elapsed):
        gen.submitted_at = timezone.now() - timedelta(seconds=elapsed)
        return timing.poll_delay(gen, KieAdapter)

    assert delay_at(12) == pytest.approx(settings.POLL_FAST_SECONDS)  # just missed: again in 1 s
    assert delay_at(14) == pytest.approx(settings.POLL_FAST_SECONDS)  # ...briefly (30 % of 11.55 s)
    assert delay_at(16) == pytest.approx(KIE_CADENCE)  # then the provider's cadence
    assert delay_at(25) == pytest.approx(KIE_CADENCE)
    later = [delay_at(s) for s in (40, 60, 90, 119, 300, 3000)]
    assert later == sorted(later)  # less and less often...
    assert all(KIE_CADENCE <= d <= settings.POLL_BACKOFF_MAX_SECONDS for d in later)  # ...within bounds
    assert later[-1] == settings.POLL_BACKOFF_MAX_SECONDS


@pytest.mark.django_db
def test_an_early_answer_waits_for_the_usual_time_not_the_cadence(team, user, cadence):
    """A status call before the usual time (a callback's nudge, a retry)
    found it generating: the next one is still at the usual time."""
    finished_before(team, user, 20.0)
    gen = submitted_job(team, user)
    gen.submitted_at = timezone.now() - timedelta(seconds=6)
    gen.pending_seen_at = timezone.now()
    assert 14.5 < timing.poll_delay(gen, KieAdapter) <= 15.5  # at 21 s, not 5 s later


@pytest.mark.django_db
def test_short_polls_are_held_to_each_keys_budget_across_all_its_jobs(team, user, cadence, settings):
    """Many jobs that just missed their time cannot together poll a key
    faster than its budget: past it they wait for the cadence; another key
    has its own budget."""
    settings.POLL_FAST_BUDGET, settings.POLL_FAST_BUDGET_SECONDS = 3, 5.0
    finished_before(team, user, 10.0)
    one = KieAdapter(base_url="https://api.kie.ai", api_key="key-one")
    two = KieAdapter(base_url="https://api.kie.ai", api_key="key-two")

    def just_missed():
        gen = submitted_job(team, user)
        gen.submitted_at = timezone.now() - timedelta(seconds=11)
        gen.pending_seen_at = timezone.now()
        return gen

    delays = [timing.poll_delay(just_missed(), one) for _ in range(5)]
    assert delays == [settings.POLL_FAST_SECONDS] * 3 + [KIE_CADENCE] * 2
    assert timing.poll_delay(just_missed(), two) == settings.POLL_FAST_SECONDS
    settings.POLL_FAST_BUDGET = 0  # short polls off
    assert timing.poll_delay(just_missed(), two) == KIE_CADENCE


@pytest.mark.django_db
def test_a_finished_job_records_the_provider_time_that_kie_reports(team, user, sandbox):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a harbour at dusk")
    run_tasks(until=gen)
    gen.refresh_from_db()
    assert gen.status == Generation.SUCCEEDED
    assert gen.provider_seconds is not None and 0 <= gen.provider_seconds < 5
    assert timing.expected_seconds("kie", "seedream-v4") == pytest.approx(gen.provider_seconds + 0.5)


def test_reported_times_in_epoch_milliseconds_and_iso():
    assert timing.reported_seconds({"code": 200, "data": {"createTime": 1700000000000,
                                                        "completeTime": 1700000011500}}) == pytest.approx(11.5)
    assert timing.reported_seconds({"createTime": "2026-11-26T10:00:00Z",
                                  "completeTime": "2026-11-26T10:00:11Z"}) == pytest.approx(11.0)
    assert timing.reported_seconds({"createTime": "2026-11-26T10:00:00Z"}) is None
    assert timing.reported_seconds({"createTime": 5, "completeTime": 1}) is None  # backwards: ignored
    assert timing.reported_seconds(None) is None


@pytest.mark.django_db
def test_without_reported_times_the_polls_bracket_the_provider_time(team, user):
    from playground.providers.exchange import Outcome

    gen = submitted_job(team, user)
    now = timezone.now()
    gen.submitted_at = now - timedelta(seconds=15)
    gen.pending_seen_at = now - timedelta(seconds=5)  # still generating at 10 s, done at 15 s
    assert timing.provider_seconds(gen, Outcome("succeeded", image_urls=["x"])) == pytest.approx(12.5, abs=0.2)


@pytest.mark.django_db
def test_a_submitted_job_is_scheduled_for_its_models_usual_time(team, user, sandbox, settings):
    settings.POLL_SECONDS = None
    finished_before(team, user, 11.0)
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a rowing boat on a lake")
    assert step_job(gen) != "not due"  # the submit
    gen.refresh_from_db()
    assert gen.status == Generation.RUNNING and gen.lease_until is None
    first = (gen.due_at - gen.submitted_at).total_seconds()
    assert 11.0 < first <= 12.0
    assert step_job(gen) == "not due"  # no worker asks before then


@pytest.mark.django_db
def test_without_reported_times_a_first_ask_hit_does_not_creep_the_median_up(team, user):
    from playground.providers.exchange import Outcome

    gen = submitted_job(team, user)
    gen.submitted_at = timezone.now() - timedelta(seconds=10.5)  # asked at median 10 + 0.5 margin: done
    assert timing.provider_seconds(gen, Outcome("succeeded", image_urls=["x"])) == pytest.approx(10.0, abs=0.2)


@pytest.mark.django_db
def test_a_job_with_the_providers_estimate_is_looked_at_mid_way_then_at_the_estimate(team, user, cadence):
    """kvid says when this job should be done (estimated_time): one look
    mid-way (its card shows the provider's stage), then at the estimate,
    even when the model's history says otherwise."""
    from playground.providers.kvid import KvidAdapter

    finished_before(team, user, 30.0, model="text-to-image", provider="kvid")
    gen = submitted_job(team, user, provider="kvid", model="text-to-image")
    gen.estimated_seconds = 10.0
    assert timing.poll_delay(gen, KvidAdapter) == pytest.approx(4.0, abs=0.1)  # mid-way
    gen.submitted_at = timezone.now() - timedelta(seconds=4)
    gen.pending_seen_at = timezone.now()
    assert timing.poll_delay(gen, KvidAdapter) == pytest.approx(6.0, abs=0.1)  # at the estimate
    gen.estimated_seconds = 5.0  # mid-way would come before kvid's 3 s cadence: no look mid-way
    gen.submitted_at, gen.pending_seen_at = timezone.now(), None
    assert timing.poll_delay(gen, KvidAdapter) == pytest.approx(5.0, abs=0.1)


@pytest.mark.django_db
def test_a_kvid_job_is_polled_mid_way_showing_its_stage_then_at_kvids_estimate(team, user, settings, tmp_path):
    """Against the sandbox (estimated_time "8s" at 8 s latency): the submit
    schedules a look at 40 % of it; there the provider is processing and the
    job shows "generating"; the next call is at the estimate, and the job
    is done then."""
    from tests.helpers import start_sandbox, use_sandbox

    sb = start_sandbox(tmp_path, latency=8.0)
    try:
        use_sandbox(settings, sb)
        settings.POLL_SECONDS = None
        gen = factories.job(team, user, "kvid", "text-to-image", prompt="a windmill by a canal")
        assert step_job(gen) != "not due"  # the submit
        gen.refresh_from_db()
        assert gen.status == Generation.RUNNING and gen.estimated_seconds == 8.0
        assert (gen.due_at - gen.submitted_at).total_seconds() == pytest.approx(3.2, abs=0.05)

        sb.started_earlier(3.2)  # the provider's clock at the look mid-way
        assert step_job(gen) == "not due"
        Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())
        assert step_job(gen) != "not due"
        gen.refresh_from_db()
        assert gen.status == Generation.RUNNING and gen.phase == "generating"
        assert (gen.due_at - gen.submitted_at).total_seconds() == pytest.approx(8.0, abs=0.3)

        sb.started_earlier(4.8)  # ...and at the estimate: done at the first call
        assert step_job(gen) == "not due"
        Generation.objects.filter(pk=gen.pk).update(due_at=timezone.now())
        assert step_job(gen) != "not due"
        gen.refresh_from_db()
        assert gen.status == Generation.SUCCEEDED and gen.images.count() == 1
    finally:
        sb.stop()


@pytest.mark.django_db
def test_a_look_mid_way_does_not_halve_the_recorded_provider_time(team, user):
    """Generating at 4 s (the look mid-way), done at the call at its 10 s
    estimate: the provider took about 10 s, not the middle of 4 and 10."""
    from playground.providers.exchange import Outcome

    gen = submitted_job(team, user, provider="kvid", model="text-to-image")
    now = timezone.now()
    gen.estimated_seconds = 10.0
    gen.submitted_at = now - timedelta(seconds=10.2)
    gen.pending_seen_at = now - timedelta(seconds=6.2)
    assert timing.provider_seconds(gen, Outcome("succeeded", image_urls=["x"])) == pytest.approx(9.7, abs=0.2)



@pytest.mark.django_db
def test_a_running_job_card_shows_the_providers_estimate(team, user, client_in):
    gen = submitted_job(team, user, provider="kvid", model="text-to-image")
    html = client_in.get(gen.get_absolute_url()).content.decode()
    assert "the provider estimates" not in html  # no estimate: nothing made up
    Generation.objects.filter(pk=gen.pk).update(estimated_seconds=90.0)
    html = client_in.get(gen.get_absolute_url()).content.decode()
    assert "the provider estimates 1 min 30 s" in html
    Generation.objects.filter(pk=gen.pk).update(status=Generation.SUCCEEDED, finished_at=timezone.now())
    assert "the provider estimates" not in client_in.get(gen.get_absolute_url()).content.decode()
