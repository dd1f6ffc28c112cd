"""Text that is not valid Unicode (RELIABILITY 11) at the playground: a
form post is refused (400, naming the field) and makes nothing; pipeline.create refuses
it for any caller; a job that holds it anyway (a row from before) fails as
a refused request, sent to nobody, never as "may have reached the provider"."""

from __future__ import annotations

from django.urls import reverse
import pytest

from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger.models import Entry
from playground.providers.errors import ProviderError

from tests.bad_text import NUL_TEXT, SURROGATE, multipart
from tests.helpers import Counting, run_tasks, start_sandbox, use_sandbox

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
HTMX = {"HTTP_HX_REQUEST": "true"}
FIELDS = {"image_size": "square", "image_resolution": "1K", "num_inference_steps": "20"}


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_form_post_with_a_lone_surrogate_is_refused_and_makes_no_job(client_in, sandbox, htmx):
    body, ctype = multipart({"prompt": SURROGATE, **FIELDS})
    r = client_in.generic("POST", URL, body, content_type=ctype, **(HTMX if htmx else {}))
    assert r.status_code == 400
    assert ("The form field \u201cprompt\u201d is not valid Unicode: it has a lone surrogate (U+D800) at "
            "character 2.") in r.content.decode()
    assert Generation.objects.count() == 0 and Entry.objects.count() == 0


def test_a_nul_is_refused_in_the_same_words(client_in, sandbox):
    r = client_in.post(URL, {"prompt": NUL_TEXT, **FIELDS}, **HTMX)
    assert r.status_code == 400
    assert "has a NUL character (U+0000) at character 2, which is not allowed." in r.content.decode()
    assert Generation.objects.count() == 0


@pytest.mark.parametrize("prompt", [SURROGATE, NUL_TEXT])
def test_jobs_create_refuses_it_for_any_caller(sandbox, team, user, prompt):
    with pytest.raises(ProviderError) as e:
        create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": prompt})
    assert (e.value.kind, e.value.field, e.value.maybe_sent) == ("validation", "prompt", False)
    assert e.value.message.startswith("Prompt ")
    assert Generation.objects.count() == 0 and Entry.objects.count() == 0


@pytest.fixture
def counted(tmp_path, settings):
    sb = start_sandbox(tmp_path, latency=0.0)
    use_sandbox(settings, sb)
    yield Counting(sb)
    sb.stop()


@pytest.mark.parametrize("provider, model", [("kie", "seedream-v4"), ("kwiki", "generate"),
                                             ("kvid", "text-to-image"), ("kawai", "generations")])
def test_a_stored_job_with_a_lone_surrogate_fails_as_refused_and_sends_nothing(counted, team, user, provider, model):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's jsonb refuses a lone surrogate: no such row can exist there")
    gen = create.create(team=team, owner=user, provider=provider, model=model, params={"prompt": "a paper boat"})
    # A row written before the rule (SQLite keeps the escape in its JSON).
    Generation.objects.filter(pk=gen.pk).update(params={**gen.params, "prompt": SURROGATE})
    run_tasks(until=gen)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind, gen.error_field) == (Generation.FAILED, "validation", "prompt")
    assert "may have reached" not in gen.error_message
    assert "not valid Unicode" in gen.error_message
    assert counted.paths == []  # not one request reached the provider
    assert set(Entry.objects.filter(generation=gen).values_list("kind", flat=True)) == {Entry.RESERVE, Entry.RELEASE}
