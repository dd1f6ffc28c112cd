"""The shared inputs become each model's own fields (what a model lacks is
"not used"), every cell's job runs against the sandboxes, the seed sent is
recorded per cell, a failed cell is retried alone, and a grid a hard budget
refuses creates nothing and names the cells."""

from decimal import Decimal

from django.urls import reverse
from pytest_django.asserts import assertInHTML

from playground.accounts.models import Endpoint
from playground.compare import fanout
from playground.compare.models import Cell, Comparison
from playground.generations.models import Generation
from playground.ledger.models import Budget

from tests import factories
from tests.compare.util import THREE, elements, newest, post_new, text, texts, values
from tests.helpers import run_tasks


def test_shared_inputs_map_onto_each_models_own_fields():
    m = lambda key, **kw: fanout.map_inputs(*key.split(":"), prompt="a red chair", seed=7, **kw)  # noqa: E731
    seedream = m("kie:seedream-v4", aspect="16:9", negative_prompt="blur")
    assert seedream.params["image_size"] == "landscape_16_9" and seedream.params["seed"] == 7
    assert seedream.dropped == ["negative prompt"]
    kvid = m("kvid:text-to-image", aspect="3:4", negative_prompt="blur")
    assert (kvid.params["size_mode"], kvid.params["aspect_ratio"], kvid.params["negative_prompt"]) == (
        "aspect_ratio", "3:4", "blur") and kvid.dropped == []
    gpt = m("kie:gpt4o-image", aspect="16:9")
    assert gpt.params["size"] == "3:2"  # its closest choice
    flux = m("kie:flux-kontext", aspect="9:16")
    assert flux.params["aspect_ratio"] == "9:16"
    nano = m("kie:nano-banana", aspect="16:9")
    assert (nano.params["width"], nano.params["height"]) == (1024, 576)
    kawai = m("kawai:generations", aspect="2:3")
    assert kawai.params["size"] == "1024x1536" and "seed" not in kawai.params and kawai.dropped == ["seed"]
    kwiki = m("kwiki:generate", aspect="1:1", negative_prompt="blur")
    assert kwiki.dropped == ["negative prompt", "seed", "aspect ratio"]
    # With an input image: the model's image field, switched into its edit mode.
    ref = "5f0c3c3e-1111-4111-8111-111111111111"
    edit = m("kie:nano-banana", image=ref)
    assert edit.params["model"] == "google/nano-banana-edit" and edit.params["image"] == ref
    mj = m("kie:midjourney", image=ref)
    assert mj.params["task_type"] == "mj_img2img"
    assert "kawai:edits" in dict(fanout.choices(True)) and "kawai:edits" not in dict(fanout.choices(False))


def test_the_request_each_model_gets(sandbox, team):
    """The exact request body, per model, against the sandbox endpoints."""
    for key, expect in [
        ("kie:seedream-v4", {"prompt": "a red chair", "seed": 7, "image_size": "landscape_16_9"}),
        ("kie:qwen", {"prompt": "a red chair", "seed": 7, "image_size": "landscape_16_9"}),
        ("kvid:text-to-image", {"prompt": "a red chair", "seed": 7, "aspect_ratio": "16:9"}),
        ("kawai:generations", {"prompt": "a red chair", "size": "1536x1024"}),
    ]:
        provider, model = key.split(":")
        mapped = fanout.map_inputs(provider, model, prompt="a red chair", seed=7, aspect="16:9")
        req = Endpoint.resolve(team, provider).adapter().build_request(model, mapped.params)
        flat = dict(req.json or req.data or {})
        for nested in [v for v in flat.values() if isinstance(v, dict)]:
            flat.update(nested)
        for field, value in expect.items():
            assert flat.get(field) == value, (key, field, flat)


def test_a_comparison_runs_every_cell_and_records_the_seed_sent(client_in, sandbox, team):
    r = post_new(client_in, seeds="11, 12", aspect="16:9", name="Lake")
    comp = newest()
    assert r.status_code == 302 and r["Location"] == reverse("compare_grid", args=[comp.uuid])
    rows = list(comp.rows.all())
    assert [(row.index, row.seed) for row in rows] == [(0, 11), (1, 12)]
    cells = list(Cell.objects.filter(row__comparison=comp).select_related("generation", "row"))
    assert len(cells) == 6
    for cell in cells:
        assert cell.generation.params["prompt"] == "a calm lake at dawn"
        if cell.provider == "kawai":
            assert cell.seed_used is None and cell.dropped == ["seed"]
        else:
            assert cell.seed_used == cell.row.seed == cell.generation.params["seed"]
    for cell in cells:
        run_tasks(until=cell.generation)
    assert set(Generation.objects.filter(compare_cells__row__comparison=comp).values_list("status", flat=True)) == {
        "succeeded"}
    page = client_in.get(reverse("compare_grid", args=[comp.uuid])).content.decode()
    assert len(elements(page, "td", data_testid="cell")) == 6
    assertInHTML('<small class="muted" data-testid="not-used">not used: seed</small>', page)
    assert "median time" in page and "failures 0 of 2" in page
    assert "KIE credits" in page and "kvid credits" in page


def test_without_a_seed_one_is_drawn_recorded_and_sent_everywhere(client_in):
    post_new(client_in, models=["kie:seedream-v4", "kie:qwen"])
    row = newest().rows.get()
    seeds = {c.seed_used for c in row.cells.all()} | {c.generation.params["seed"] for c in row.cells.all()}
    assert seeds == {row.seed}


def test_one_failed_cell_is_shown_and_retried_alone(client_in, team):
    post_new(client_in, prompt="a calm lake", prompt_2="a calm lake at night", models=["kie:seedream-v4", "kie:qwen"])
    comp = newest()
    for cell in Cell.objects.filter(row__comparison=comp).select_related("row", "generation"):
        if cell.row.index == 1:
            factories.fail(cell.generation, message="The provider could not draw at night.")
        else:
            factories.finish(cell.generation)
    failed = list(Cell.objects.filter(row__comparison=comp, generation__status="failed"))
    assert sorted(c.row.index for c in failed) == [1, 1]
    page = client_in.get(reverse("compare_grid", args=[comp.uuid])).content.decode()
    assertInHTML('<button type="submit" class="secondary">Retry this cell</button>', page, count=2)
    assertInHTML('<p class="error" data-testid="cell-error">The provider could not draw at night.</p>', page, count=2)
    cell = failed[0]
    old = cell.generation
    r = client_in.post(reverse("compare_retry", args=[cell.uuid]))
    assert r.status_code == 302
    cell.refresh_from_db()
    assert cell.generation != old and cell.generation_uuid == cell.generation.uuid
    assert cell.generation.params == old.params and Generation.objects.filter(pk=old.pk).exists()
    assert Generation.objects.filter(compare_cells__row__comparison=comp).count() == 4
    # A succeeded cell is not retried.
    done = Cell.objects.filter(row__comparison=comp, generation__status="succeeded").first()
    before = done.generation_id
    client_in.post(reverse("compare_retry", args=[done.uuid]))
    done.refresh_from_db()
    assert done.generation_id == before


def test_a_hard_budget_refusal_creates_nothing_and_names_the_cells(client_in, team, user):
    # Seedream costs 3.5 KIE credits a run: 5 holds one cell, not two.
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("5"), hard=True)
    r = post_new(client_in, seeds="1, 2", models=["kie:seedream-v4", "kawai:generations"])
    assert r.status_code == 400
    page = r.content.decode()
    [refusal] = elements(page, data_testid="refusal")
    assert text(refusal).startswith("Over budget: nothing was created. These cells could not run: "
                                    "row 2 KIE.ai - Seedream V4.")
    assert "row 1 KIE.ai" not in page and "Kawai" in page
    assert Comparison.objects.count() == 0 and Generation.objects.count() == 0 and Cell.objects.count() == 0


def test_the_quote_covers_the_whole_grid(client_in):
    r = post_new(client_in, seeds="1, 2", models=["kie:seedream-v4", "kvid:text-to-image"], action="quote")
    page = r.content.decode()
    [quote] = elements(page, "div", id="compare-quote")
    assert r.status_code == 200 and text(quote).startswith("Quote 4 cells: ")
    [units] = texts(page, "quote-units")
    assert "7 KIE credits" in units and "16 kvid credits" in units
    assert Comparison.objects.count() == 0


def test_fields_are_limited_and_rows_are_prompts_or_seeds(client_in):
    r = post_new(client_in, name="n" * 121)
    assert r.status_code == 400 and "At most 120 characters (this has 121)." in r.content.decode()
    r = post_new(client_in, prompt="p" * 4001)
    assert r.status_code == 400 and "At most 4000 characters (this has 4001)." in r.content.decode()
    r = post_new(client_in, prompt_2="another", seeds="1, 2")
    assert r.status_code == 400 and "several prompts or several seeds, not both" in r.content.decode()
    r = post_new(client_in, seeds="1,2,3,4,5")
    assert r.status_code == 400 and "At most 4 seeds." in r.content.decode()
    r = post_new(client_in, models=["kawai:edits"])
    assert r.status_code == 400 and "need an input image" in r.content.decode()
    assert Comparison.objects.count() == 0


def test_a_cells_image_is_like_any_other_favorite_and_use_as_input(client_in, team, user):
    from playground.generations.models import Favorite, InputImage

    post_new(client_in, models=["kie:seedream-v4"])
    comp = newest()
    cell = Cell.objects.get(row__comparison=comp)
    factories.finish(cell.generation)
    grid_url = reverse("compare_grid", args=[comp.uuid])
    page = client_in.get(grid_url).content.decode()
    assertInHTML('<button type="submit" class="linklike" aria-pressed="false">Favorite</button>', page)
    assertInHTML('<button type="submit" class="linklike">Use as input</button>', page)
    cells_page = client_in.get(reverse("compare_cells", args=[comp.uuid])).content.decode()
    assertInHTML(f'<input type="hidden" name="next" value="{grid_url}">', cells_page)
    r = client_in.post(reverse("toggle_favorite", args=[cell.generation.uuid]), {"next": grid_url})
    assert r["Location"] == grid_url and Favorite.objects.filter(user=user, generation=cell.generation).exists()
    assertInHTML('<button type="submit" class="linklike" aria-pressed="true">Unfavorite</button>',
                 client_in.get(grid_url).content.decode())
    image = cell.generation.images.get()
    r = client_in.post(reverse("use_as_input", args=[image.uuid]))
    assert r.status_code == 302 and InputImage.objects.filter(team=team, source=image).exists()


def test_per_model_overrides_replace_what_the_shared_inputs_gave(client_in):
    r = post_new(client_in, models=["kie:qwen", "kie:seedream-v4"], aspect="1:1",
                 overrides="kie:qwen num_inference_steps=40 acceleration_level=high image_size=landscape_4_3")
    assert r.status_code == 302
    comp = newest()
    cells = {c.model: c for c in Cell.objects.filter(row__comparison=comp)}
    assert cells["qwen"].params["num_inference_steps"] == 40
    assert cells["qwen"].params["acceleration_level"] == "high" and cells["qwen"].params["image_size"] == "landscape_4_3"
    assert cells["seedream-v4"].params["image_size"] == "square"
    # Kept for a re-run.
    client_in.post(reverse("compare_rerun", args=[comp.uuid]))
    assert Cell.objects.get(row__comparison=newest(), model="qwen").params["num_inference_steps"] == 40
    for bad, message in [("kie:qwen speed=9", "has no parameter"), ("kie:qwen acceleration_level=turbo", "not a value"),
                         ("kvid:text-to-image seed=1", "not one of the chosen models"),
                         ("kie:qwen num_inference_steps=500", "KIE.ai - Qwen: Steps must be a whole number from 1 to 50.")]:
        r = post_new(client_in, models=["kie:qwen"], overrides=bad)
        assert r.status_code == 400 and message in r.content.decode(), bad


def test_the_live_quote_is_a_fragment_and_names_a_budget_it_would_break(client_in, team):
    Budget.objects.create(team=team, provider="kie", unit="kie_credit", amount=Decimal("5"), hard=True)
    r = client_in.post(reverse("compare_new"), {"prompt": "a calm lake", "models": ["kie:seedream-v4"],
                                                "seeds": "1, 2", "visibility": "team", "action": "quote"},
                       HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200 and "<html" not in body
    [quote] = elements(body, "div", id="compare-quote")
    assert text(quote).startswith("Quote 2 cells: 7 KIE credits")
    assertInHTML('<p class="msg msg-error">Refused by budget: Team monthly budget for KIE.ai</p>', body)


def test_a_double_submit_makes_one_comparison(client_in):
    [token] = values(client_in.get(reverse("compare_new")).content.decode(), "client_token")
    first = post_new(client_in, client_token=token, models=["kie:seedream-v4"])
    second = post_new(client_in, client_token=token, models=["kie:seedream-v4"])
    assert first["Location"] == second["Location"]
    assert Comparison.objects.count() == 1 and Generation.objects.count() == 1


def test_the_quote_adds_every_providers_cells_against_a_budget_for_all_providers(client_in, team, settings):
    """$0.10 for all providers. Two seed rows: the KIE cells ($0.035) fit
    alone and the Kawai cells ($0.08) fit alone, but together ($0.115) they
    do not, and the quote says so before anything is sent. One row
    ($0.0575) fits."""
    settings.CREDIT_PRICES = {"kie": "0.005"}
    Budget.objects.create(team=team, provider="", unit="USD", amount=Decimal("0.10"), hard=True)
    models = ["kie:seedream-v4", "kawai:generations"]
    refused = '<p class="msg msg-error">Refused by budget: Team monthly budget for all providers</p>'
    fits = post_new(client_in, seeds="1", models=models, action="quote").content.decode()
    assertInHTML(refused, fits, count=0)
    over = post_new(client_in, seeds="1, 2", models=models, action="quote").content.decode()
    assertInHTML(refused, over)
    assert Comparison.objects.count() == 0
