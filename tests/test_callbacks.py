"""A provider callback is only a hint (RELIABILITY 5)."""

from conftest import run_tasks, start_sandbox, use_sandbox
from django.urls import reverse
from django_tasks_db.models import DBTaskResult
import pytest

from playground.core import jobs
from playground.core.models import Generation


def make(team, user, prompt="a field of sunflowers"):
    return jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": prompt})


def test_the_callback_url_sent_to_the_provider_carries_an_unguessable_token(sandbox, team, user, settings):
    import json
    import sqlite3

    settings.PUBLIC_BASE_URL = "https://playground.example.com"
    gen = make(team, user)
    jobs.advance(gen.pk)
    gen.refresh_from_db()
    with sqlite3.connect(sandbox.app.config.db_path) as c:
        (params,) = c.execute("SELECT params FROM tasks WHERE id=?", (gen.provider_job_id,)).fetchone()
    assert json.loads(params)["callBackUrl"] == f"https://playground.example.com/callbacks/kie/{gen.callback_token}"
    assert len(gen.callback_token) >= 40


def test_a_callback_makes_the_job_check_with_the_provider_and_changes_nothing_else(client, sandbox, team, user):
    gen = make(team, user)
    jobs.advance(gen.pk)
    DBTaskResult.objects.all().delete()
    gen.refresh_from_db()
    before = (gen.status, gen.provider_job_id, gen.error_kind)
    # A forged body claiming success with someone else's image:
    body = {"code": 200, "data": {"taskId": gen.provider_job_id, "resultUrls": ["https://evil.example/x.png"]}}
    response = client.post(reverse("provider_callback", args=["kie", gen.callback_token]), body, content_type="application/json")
    assert response.status_code == 200
    gen.refresh_from_db()
    assert (gen.status, gen.provider_job_id, gen.error_kind) == before
    assert DBTaskResult.objects.filter(status="READY").count() == 1  # one status check scheduled
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    assert gen.images.count() == 1  # the image came from record-info, not the callback


def test_a_forged_token_is_a_404(client, sandbox, team, user):
    gen = make(team, user)
    response = client.post(reverse("provider_callback", args=["kie", "not-the-token"]), {}, content_type="application/json")
    assert response.status_code == 404
    response = client.post(reverse("provider_callback", args=["kwiki", gen.callback_token]), {}, content_type="application/json")
    assert response.status_code == 404


def test_replaying_a_callback_after_the_job_finished_changes_nothing(client, sandbox, team, user):
    gen = make(team, user)
    run_tasks(until=gen)
    finished = (gen.status, gen.finished_at, gen.images.count())
    for _ in range(3):
        client.post(reverse("provider_callback", args=["kie", gen.callback_token]), {}, content_type="application/json")
    gen.refresh_from_db()
    assert (gen.status, gen.finished_at, gen.images.count()) == finished
    assert not DBTaskResult.objects.filter(status="READY").exists()


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_delivers_the_callback_to_the_running_app(live_server, team, user, settings, tmp_path):
    import time

    sb = start_sandbox(tmp_path, callbacks=True, latency=0.2)
    try:
        use_sandbox(settings, sb)
        settings.PUBLIC_BASE_URL = live_server.url
        settings.POLL_SECONDS = 300  # no polling: only the callback can wake the job
        gen = make(team, user, "a sailing ship")
        jobs.advance(gen.pk)
        DBTaskResult.objects.all().delete()
        deadline = time.monotonic() + 10
        while not DBTaskResult.objects.filter(status="READY").exists():
            assert time.monotonic() < deadline, "no callback arrived"
            time.sleep(0.1)
        run_tasks(until=gen)
        assert gen.status == Generation.SUCCEEDED
    finally:
        sb.stop()
