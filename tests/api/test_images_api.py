"""The OpenAI-compatible Images API, driven by the official openai client
against the app under uvicorn, with a task worker and the sandboxes."""

from __future__ import annotations

import base64
from decimal import Decimal
import io

import httpx
import openai
import pytest
from PIL import Image

from playground.accounts.models import ApiToken
from playground.generations.models import Generation, GenerationImage
from playground.ledger.models import Budget, Entry
from tests.helpers import login

PROMPT = "a red kite over a green hill"


def png(w=64, h=64, color=(200, 120, 40), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (w, h), color).save(out, "PNG")
    return out.getvalue()


def error_of(exc) -> dict:
    """The OpenAI error object the client read ({"message", "type", "param", "code"})."""
    return exc.value.body


def fetch(url: str) -> httpx.Response:
    """A plain GET without any session: the signed URL is the permission."""
    return httpx.get(url, timeout=30)


def test_sync_provider_returns_a_signed_url_and_the_job_is_a_normal_generation(oai, user, bob, team):
    r = oai.images.generate(model="kwiki/generate", prompt=PROMPT, quality="hd")
    assert isinstance(r.created, int) and len(r.data) == 1
    url = r.data[0].url
    assert "/v1/images/files/" in url and "127.0.0.1:8001" not in url  # ours, not the provider's
    got = fetch(url)
    assert got.status_code == 200 and got.headers["content-type"].startswith("image/")
    gen = Generation.objects.get()
    assert (gen.provider, gen.model, gen.status) == ("kwiki", "generate", Generation.SUCCEEDED)
    assert gen.params["quality"] == "hires"  # OpenAI's hd, as Kwiki declares it
    assert gen.owner == user and gen.team == team and gen.api_token.name == "script"
    assert got.content == GenerationImage.objects.get().file.open("rb").read()
    # On the ledger (reserved, then captured) and in the team gallery for a teammate.
    assert set(Entry.objects.filter(generation=gen).values_list("kind", flat=True)) == {Entry.RESERVE, Entry.CAPTURE}
    page = login(bob).get("/generations/?scope=team")
    assert str(gen.uuid) in page.content.decode()


def test_async_provider_with_its_own_count_param_and_b64_json(oai):
    r = oai.images.generate(model="kvid/text-to-image", prompt=PROMPT, n=2, size="512x768",
                            response_format="b64_json", output_format="png")
    assert len(r.data) == 2 and all(d.url is None for d in r.data)
    gen = Generation.objects.get()  # one job that makes both (kvid's num_images)
    assert gen.params["num_images"] == 2
    assert (gen.params["size_mode"], gen.params["width"], gen.params["height"]) == ("custom", 512, 768)
    stored = [img.file.open("rb").read() for img in gen.images.order_by("index")]
    assert [base64.b64decode(d.b64_json) for d in r.data] == stored
    assert Image.open(io.BytesIO(stored[0])).size == (512, 768)


def test_n_above_one_on_a_one_image_model_makes_one_generation_per_image(oai):
    r = oai.images.generate(model="kie/seedream-v4", prompt=PROMPT, n=2, size="1024x1024")
    assert len(r.data) == 2
    gens = Generation.objects.all()
    assert gens.count() == 2 and {g.params["image_size"] for g in gens} == {"square_hd"}
    assert all(fetch(d.url).status_code == 200 for d in r.data)
    assert Entry.objects.filter(kind=Entry.CAPTURE).count() == 2


def test_edit_with_a_mask_and_a_variation(oai):
    image, mask = png(64, 64), png(64, 64, 255, "L")
    r = oai.images.edit(model="kawai/edits", image=("in.png", image, "image/png"),
                        mask=("mask.png", mask, "image/png"), prompt="add a small boat")
    assert len(r.data) == 1 and fetch(r.data[0].url).status_code == 200
    edit = Generation.objects.get(model="edits")
    inputs = edit.input_images()
    assert inputs["image"] is not None and inputs["mask"] is not None and edit.has_input
    r = oai.images.create_variation(model="kawai/variations", image=("in.png", image, "image/png"), n=2)
    assert len(r.data) == 2
    assert Generation.objects.get(model="variations").params["n"] == 2


def test_provider_params_pass_through_extra_body_and_unknown_ones_are_refused(oai):
    oai.images.generate(model="kie/seedream-v4", prompt=PROMPT,
                        extra_body={"num_inference_steps": 12, "provider_params": {"image_resolution": "2K"}})
    gen = Generation.objects.get()
    assert (gen.params["num_inference_steps"], gen.params["image_resolution"]) == (12, "2K")
    with pytest.raises(openai.BadRequestError) as e:
        oai.images.generate(model="kie/seedream-v4", prompt=PROMPT, extra_body={"colour": "blue"})
    assert error_of(e)["param"] == "colour" and error_of(e)["type"] == "invalid_request_error"


def test_unknown_and_not_allowed_models_are_404_model_not_found(oai, client_for, user, team):
    with pytest.raises(openai.NotFoundError) as e:
        oai.images.generate(model="kie/no-such-model", prompt=PROMPT)
    assert error_of(e) == {"message": "The model `kie/no-such-model` does not exist or you do not have access to it.",
                           "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    _, narrow = ApiToken.issue(user, team, "narrow", allowed_models=["kwiki/generate"])
    with pytest.raises(openai.NotFoundError) as e:
        client_for(narrow).images.generate(model="kie/seedream-v4", prompt=PROMPT)
    assert error_of(e)["code"] == "model_not_found"
    assert Generation.objects.count() == 0


@pytest.mark.parametrize("model, size", [("kawai/generations", "big"), ("kvid/text-to-image", "4096x4096"),
                                         ("kwiki/generate", "1024x1024"), ("kie/gpt4o-image", "1000x1024")])
def test_a_size_the_model_cannot_take_is_a_400_naming_size(oai, model, size):
    with pytest.raises(openai.BadRequestError) as e:
        oai.images.generate(model=model, prompt=PROMPT, size=size)
    assert error_of(e)["param"] == "size" and error_of(e)["type"] == "invalid_request_error"
    assert Generation.objects.count() == 0


def test_revoked_token_is_401(client_for, user, team):
    token, secret = ApiToken.issue(user, team, "old")
    token.revoke()
    with pytest.raises(openai.AuthenticationError) as e:
        client_for(secret).images.generate(model="kwiki/generate", prompt=PROMPT)
    assert error_of(e)["code"] == "revoked_api_key" and "old" in error_of(e)["message"]
    with pytest.raises(openai.AuthenticationError):
        client_for("ipg_not-a-token").models.list()


def test_a_hard_budget_refuses_before_anything_is_made(oai, team):
    Budget.objects.create(team=team, provider="kwiki", unit="kwiki_credit", amount=Decimal("0.5"), hard=True)
    with pytest.raises(openai.RateLimitError) as e:
        oai.images.generate(model="kwiki/generate", prompt=PROMPT)
    assert e.value.status_code == 429 and e.value.response.headers["x-should-retry"] == "false"
    assert error_of(e)["type"] == "insufficient_quota" and error_of(e)["code"] == "insufficient_quota"
    assert "Over budget" in error_of(e)["message"]
    assert Generation.objects.count() == 0 and Entry.objects.count() == 0


def test_rate_limit_is_429_with_retry_after(client_for, user, team):
    _, secret = ApiToken.issue(user, team, "slow", rate_per_minute=2)
    c = client_for(secret)
    c.models.list()
    c.models.list()
    with pytest.raises(openai.RateLimitError) as e:
        c.models.list()
    assert 1 <= int(e.value.response.headers["Retry-After"]) <= 60
    assert error_of(e)["code"] == "rate_limit_exceeded" and "2 requests per minute" in error_of(e)["message"]


@pytest.mark.parametrize("kwargs, param", [
    ({"prompt": "x" * 1001}, "prompt"),  # Kwiki's limit
    ({"prompt": PROMPT, "n": 1000}, "n"),
    ({"prompt": PROMPT, "response_format": "gif"}, "response_format"),
    ({"prompt": PROMPT, "style": "vivid"}, "style"),
])
def test_hostile_or_unsupported_fields_are_400_naming_the_field(oai, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        oai.images.generate(model="kwiki/generate", **kwargs)
    assert error_of(e)["param"] == param
    assert Generation.objects.count() == 0


def test_an_upload_that_is_not_an_image_is_refused(oai):
    with pytest.raises(openai.BadRequestError) as e:
        oai.images.edit(model="kawai/edits", image=("in.png", b"not an image at all", "image/png"), prompt="x")
    assert error_of(e)["param"] == "image" and error_of(e)["code"] == "invalid_image"
    with pytest.raises(openai.BadRequestError) as e:  # image[]: two, where the model takes one
        oai.images.edit(model="kawai/edits", image=[("a.png", png(), "image/png"), ("b.png", png(), "image/png")],
                        prompt="x")
    assert error_of(e)["param"] == "image" and "takes one input image; 2 were given" in error_of(e)["message"]
    with pytest.raises(openai.BadRequestError) as e:  # an image to a model that takes none
        oai.images.edit(model="kwiki/generate", image=("in.png", png(), "image/png"), prompt="x")
    assert error_of(e)["param"] == "model"
    assert Generation.objects.count() == 0


def test_models_lists_what_the_token_may_use_with_aliases(app, client_for, oai, user, team):
    from playground.api.models import ModelAlias

    ModelAlias.objects.create(team=team, name="fast", target="kie/seedream-v4")
    ids = [m.id for m in oai.models.list()]
    assert {"kie/seedream-v4", "kvid/text-to-image", "kawai/generations", "kwiki/generate", "fast"} <= set(ids)
    _, narrow = ApiToken.issue(user, team, "narrow", allowed_models=["fast"])
    narrow_client = client_for(narrow)
    assert sorted(m.id for m in narrow_client.models.list()) == ["fast", "kie/seedream-v4"]
    assert narrow_client.models.retrieve("fast").owned_by == "kie/seedream-v4"
    r = narrow_client.images.generate(model="fast", prompt=PROMPT)
    assert len(r.data) == 1 and Generation.objects.get().model == "seedream-v4"


def test_signed_urls_tampered_or_expired_are_refused(oai, settings):
    url = oai.images.generate(model="kwiki/generate", prompt=PROMPT).data[0].url
    head, sig = url.rsplit(":", 1)
    assert fetch(f"{head}:{'A' if sig[0] != 'A' else 'B'}{sig[1:]}").status_code == 404
    assert fetch(url.replace("/files/", "/files/x")).status_code == 404
    settings.API_IMAGE_URL_SECONDS = -1  # every link is past its lifetime
    assert fetch(url).status_code == 403


def test_wait_timeout_is_504_naming_the_job_which_can_be_fetched_later(asgi_server, sandbox, client_for, secret,
                                                                        settings):
    """No worker: the job stays queued, the request gives up after API_WAIT_SECONDS."""
    from tests.helpers import run_tasks

    settings.API_WAIT_SECONDS = 0.3
    c = client_for(secret)
    with pytest.raises(openai.InternalServerError) as e:
        c.images.generate(model="kvid/text-to-image", prompt=PROMPT)
    gen = Generation.objects.get()
    err = error_of(e)
    assert e.value.status_code == 504 and err["code"] == "timeout"
    assert str(gen.uuid) in err["message"] and f"{asgi_server}/g/{gen.uuid}/" in err["message"]
    later = f"{asgi_server}/v1/images/jobs/{gen.uuid}"
    assert later in err["message"]
    headers = {"Authorization": f"Bearer {secret}"}
    pending = httpx.get(later, headers=headers)
    assert pending.status_code == 202 and pending.json()["status"] == "in_progress"
    run_tasks(until=gen)
    done = httpx.get(later, headers=headers).json()
    assert len(done["data"]) == 1 and fetch(done["data"][0]["url"]).status_code == 200
    # Another team cannot fetch it.
    assert httpx.get(later, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_failed_job_answers_with_the_providers_error(oai):
    with pytest.raises(openai.BadRequestError) as e:
        oai.images.generate(model="kwiki/generate", prompt="a harbour [blocked]")
    assert error_of(e)["code"] == "content_policy_violation"
    gen = Generation.objects.get()
    assert str(gen.uuid) in error_of(e)["message"]
    assert set(Entry.objects.filter(generation=gen).values_list("kind", flat=True)) == {Entry.RESERVE, Entry.RELEASE}


def test_waiting_requests_hold_no_thread(asgi_server, sandbox, client_for, secret, settings):
    """More requests wait at once than there are API threads: none queues
    behind another (no worker runs, so all of them wait the whole time)."""
    from concurrent.futures import ThreadPoolExecutor
    import time

    settings.API_THREADS = 2  # the pool is made on the server's first waiting request
    settings.API_WAIT_SECONDS = 1.5
    c = client_for(secret)

    def ask(i):
        try:
            c.images.generate(model="kvid/text-to-image", prompt=f"{PROMPT} {i}")
        except openai.APIStatusError as e:
            return e.status_code

    t = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(ask, range(12)))
    elapsed = time.monotonic() - t
    assert statuses == [504] * 12 and Generation.objects.count() == 12
    # Held one at a time per thread, 12 requests would take 6 rounds of 1.5 s.
    assert elapsed < 6, elapsed


def test_a_job_that_fails_at_the_provider_is_a_500_the_client_does_not_resend(app, client_for, secret):
    """The openai client retries 5xx by default; a resent POST would make
    (and charge) a new job, so the failure says not to."""
    c = client_for(secret).with_options(max_retries=2)
    with pytest.raises(openai.InternalServerError) as e:
        c.images.generate(model="kvid/text-to-image", prompt="a harbour [fail]")
    assert e.value.status_code == 500 and e.value.response.headers["x-should-retry"] == "false"
    gen = Generation.objects.get()  # sent once
    assert gen.status == Generation.FAILED and str(gen.uuid) in error_of(e)["message"]


def test_a_refused_edit_keeps_no_input_image(oai, team):
    from playground.generations.models import InputImage

    Budget.objects.create(team=team, provider="kawai", unit="USD", amount=Decimal("0"), hard=True)
    with pytest.raises(openai.RateLimitError):
        oai.images.edit(model="kawai/edits", image=("in.png", png(), "image/png"), prompt="add a boat")
    assert not InputImage.objects.exists() and Generation.objects.count() == 0


def test_an_oversized_json_body_is_413(app, secret, settings):
    settings.API_JSON_MAX_BYTES = 10_000
    r = httpx.post(f"{app}/v1/images/generations", headers={"Authorization": f"Bearer {secret}"},
                   json={"model": "kwiki/generate", "prompt": "x" * 20_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(f"{app}/v1/images/generations", content=b"{not json",
                   headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert httpx.get(f"{app}/v1/nothing/here").json()["error"]["code"] == "unknown_url"
    assert Generation.objects.count() == 0
