"""The playground's model form: a live estimate that is what the job is
charged and carries only the priced fields, limits on every free-text
field, and a recorded seed."""

from __future__ import annotations

from decimal import Decimal
import json
import re
import sqlite3

import pytest
from django.urls import reverse

from playground.generations.pipeline import create
from playground.generations.models import Generation
from playground.ledger.models import Entry
from playground.providers import registry
from playground.providers.errors import ProviderError

from tests.helpers import run_tasks

HTMX = {"HTTP_HX_REQUEST": "true"}


def page_url(provider, model):
    return reverse("playground") + f"?provider={provider}&model={model}"


def shown_estimate(html: str) -> str:
    return re.search(r'<span data-testid="estimate-cost">([^<]*)</span>', html).group(1)


# --- the estimate ---------------------------------------------------------------------


def test_the_estimate_takes_the_model_from_its_path_so_a_form_field_called_model_is_just_a_value(client_in, sandbox):
    flux = reverse("estimate", args=["kie", "flux-kontext"])
    assert flux == "/estimate/kie/flux-kontext"
    assert shown_estimate(client_in.get(flux + "?model=flux-kontext-max", **HTMX).content.decode()) == "12 KIE credits"
    assert shown_estimate(client_in.get(flux + "?model=flux-kontext-pro", **HTMX).content.decode()) == "8 KIE credits"
    banana = client_in.get(reverse("estimate", args=["kie", "nano-banana"]) + "?model=google/nano-banana-edit", **HTMX)
    assert banana.status_code == 200 and shown_estimate(banana.content.decode()) == "4 KIE credits"
    kawai = client_in.get(reverse("estimate", args=["kawai", "generations"]) + "?model=any-model&n=2&quality=hd", **HTMX)
    assert kawai.status_code == 200 and shown_estimate(kawai.content.decode()) == "$0.16"
    assert client_in.get(reverse("estimate", args=["kie", "no-such-model"]), **HTMX).status_code == 404


def test_the_form_marks_only_the_priced_fields_and_the_estimate_sends_only_those(client_in, sandbox):
    html = client_in.get(page_url("kie", "flux-kontext")).content.decode()
    estimate = re.search(r'<p class="muted estimate"[^>]*>', html).group(0)
    assert 'hx-get="/estimate/kie/flux-kontext"' in estimate
    assert 'hx-include=".priced"' in estimate  # not the whole form: no prompt, no CSRF token
    priced = re.findall(r'<(?:select|input|textarea)[^>]*class="priced"[^>]*>', html)
    assert [re.search(r'name="([^"]+)"', tag).group(1) for tag in priced] == ["model"]
    # A model whose price never changes asks nothing while the form is filled in.
    seedream = client_in.get(page_url("kie", "seedream-v4")).content.decode()
    assert "hx-get=\"/estimate" not in seedream and 'class="priced"' not in seedream


def test_every_parameter_that_changes_a_price_is_declared_priced():
    """The estimate sends only priced fields: any other field must not move
    the price, for any value it can take."""
    for key, adapter in registry.adapter_classes().items():
        for spec in adapter.models.values():
            priced = {p.name for p in spec.priced_params()}
            base = spec.defaults()
            for p in spec.params:
                if p.name in priced or p.kind == "image":
                    continue
                samples = [v for v, _ in p.choice_pairs()] + [p.min, p.max, p.default, True, False, "x"]
                for value in samples:
                    if value is None:
                        continue
                    try:
                        price = spec.estimate({**base, p.name: value})
                    except (TypeError, ValueError, ArithmeticError):
                        continue
                    assert price == spec.estimate(base), f"{key}/{spec.key}: {p.name}={value!r} changes the price"


@pytest.mark.parametrize("provider, model, fields, query, expected", [
    ("kie", "flux-kontext", {"model": "flux-kontext-max", "aspect_ratio": "1:1"}, "model=flux-kontext-max",
     Decimal("12")),
    ("kie", "nano-banana", {"model": "google/nano-banana", "width": "512", "height": "512", "steps": "20"},
     "model=google/nano-banana&width=512", Decimal("4")),
    ("kawai", "generations", {"model": "kawai-pro", "n": "2", "size": "1024x1024", "quality": "hd"},
     "model=kawai-pro&n=2&size=1024x1024&quality=hd", Decimal("0.16")),
    ("kvid", "text-to-image", {"size_mode": "custom", "width": "512", "height": "512", "num_images": "2",
                               "output_format": "jpeg"},
     "size_mode=custom&width=512&height=512&num_images=2", Decimal("4")),
])
def test_the_estimate_shown_is_what_the_job_is_charged(client_in, sandbox, provider, model, fields, query, expected):
    shown = client_in.get(reverse("estimate", args=[provider, model]) + "?" + query, **HTMX).content.decode()
    response = client_in.post(page_url(provider, model), {"prompt": "a paper boat on a pond", **fields}, **HTMX)
    assert response.status_code == 200 and "HX-Retarget" not in response
    gen = Generation.objects.get()
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED, gen.error_message
    charge = Entry.objects.get(generation=gen, kind=Entry.CAPTURE)
    if provider != "kvid":  # kvid reports what it used; the others are charged the estimate
        assert charge.amount == expected
    assert gen.cost_estimate == expected
    assert shown_estimate(shown) == registry.get(provider).unit.format(expected)


def test_the_page_shows_the_estimate_for_the_values_in_the_form_not_the_defaults(client_in, sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="flux-kontext",
                      params={"prompt": "a red kite", "model": "flux-kontext-max"})
    remix = client_in.get(page_url("kie", "flux-kontext") + f"&remix={gen.uuid}").content.decode()
    assert shown_estimate(remix) == "12 KIE credits"
    invalid = client_in.post(page_url("kie", "flux-kontext"), {"prompt": "", "model": "flux-kontext-max"}, **HTMX)
    assert invalid["HX-Retarget"] == "#model-form"
    assert shown_estimate(invalid.content.decode()) == "12 KIE credits"


# --- limits on free text -------------------------------------------------------------


def test_every_free_text_parameter_has_a_length_limit_and_the_textarea_shows_it(client_in, sandbox):
    for key, adapter in registry.adapter_classes().items():
        for spec in adapter.models.values():
            for p in spec.params:
                if p.kind in ("text", "longtext"):
                    assert p.max_length and p.max_length <= 5000, f"{key}/{spec.key}: {p.name} has no limit"
    html = client_in.get(page_url("kvid", "text-to-image")).content.decode()
    assert re.search(r'<textarea name="prompt"[^>]*maxlength="4000"', html)


def test_a_prompt_over_the_limit_gets_a_field_error_and_no_job(client_in, sandbox):
    response = client_in.post(page_url("kvid", "text-to-image"), {
        "prompt": "a calm lake " * 16_667, "size_mode": "aspect_ratio", "aspect_ratio": "1:1", "num_images": "1",
        "output_format": "jpeg", "enable_safety_checker": "on",
    }, **HTMX)
    html = response.content.decode()
    assert response["HX-Retarget"] == "#model-form"
    assert "Ensure this value has at most 4000 characters (it has 200003)." in html
    assert re.search(r'<textarea name="prompt"[^>]*autofocus', html)  # the first field to fix
    assert Generation.objects.count() == 0


def test_a_line_break_counts_once_as_in_the_browser(client_in, sandbox):
    prompt = ("a" * 9 + "\r\n") * 100  # 1,000 characters as the browser counts them
    client_in.post(page_url("kwiki", "generate"), {"prompt": prompt, "quality": "fast", "style": "realistic"}, **HTMX)
    assert Generation.objects.get().params["prompt"] == ("a" * 9 + "\n") * 99 + "a" * 9


def test_nothing_over_a_limit_reaches_a_provider_whoever_created_the_job(sandbox, team, user):
    # A caller that is not the form is refused at once, naming the field: no job, nothing sent.
    with pytest.raises(ProviderError) as refused:
        create.create(team=team, owner=user, provider="kvid", model="text-to-image",
                    params={"prompt": "a calm lake " * 16_667})
    assert (refused.value.kind, refused.value.field) == ("validation", "prompt")
    assert "longer than 4000 characters" in refused.value.message
    assert not Generation.objects.exists()
    spec = registry.get("kwiki").model("generate")
    with pytest.raises(ProviderError) as caught:
        registry.get("kwiki").validate(spec, {"prompt": "a cat", "style": "nude", "snap_caption_text": "x" * 201})
    assert caught.value.field == "snap_caption_text"


# --- seeds ----------------------------------------------------------------------------


def test_an_empty_seed_is_drawn_recorded_sent_and_shown(client_in, sandbox):
    response = client_in.post(page_url("kie", "seedream-v4"), {
        "prompt": "a glass of water", "image_size": "square", "image_resolution": "1K", "num_inference_steps": "20",
        "seed": "",
    }, **HTMX)
    assert response.status_code == 200
    gen = Generation.objects.get()
    seed = gen.params["seed"]
    assert isinstance(seed, int) and 1 <= seed <= 2**31 - 1
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    with sqlite3.connect(sandbox.app.config.db_path) as c:
        (sent,) = c.execute("SELECT params FROM tasks WHERE id=?", (gen.provider_job_id,)).fetchone()
    assert json.loads(sent)["seed"] == seed  # the provider got it
    detail = client_in.get(reverse("generation", args=[gen.uuid])).content.decode()
    assert re.search(rf"<dt>Seed</dt><dd>{seed}</dd>", detail)  # shown under its label
    remix = client_in.get(page_url("kie", "seedream-v4") + f"&remix={gen.uuid}").content.decode()
    assert re.search(rf'name="seed" value="{seed}"', remix)  # a remix reproduces it


def test_a_typed_seed_is_kept_and_models_without_a_seed_get_none(client_in, sandbox):
    client_in.post(page_url("kie", "seedream-v4"), {"prompt": "a cup", "image_size": "square",
                                                     "image_resolution": "1K", "num_inference_steps": "20",
                                                     "seed": "42"}, **HTMX)
    client_in.post(page_url("kwiki", "generate"), {"prompt": "a cup", "quality": "fast", "style": "realistic"}, **HTMX)
    seeds = {g.provider: g.params.get("seed") for g in Generation.objects.all()}
    assert seeds == {"kie": 42, "kwiki": None}
