"""Running a version: on its model or another one (parameters the target
lacks or refuses are dropped and listed), its {variables} asked for and
substituted, the playground opened filled; jobs made from it link back, and
the version page counts them: runs, success rate, average cost, median time,
images (favorites first)."""

from datetime import timedelta
import re

from django.urls import reverse

from playground.generations.pipeline import create
from playground.generations.models import Favorite, Generation
from playground.library import run
from playground.library.models import Prompt
from playground.providers import registry

from tests import factories
from tests.library import util

PARAMS = {"image_size": "square", "image_resolution": "2K", "num_inference_steps": 20, "seed": 5}
TEXT = "a {subject} on a {surface}, seen from the {subject}'s side"


def _origin_of(html):
    m = re.search(r'name="origin" value="([^"]+)"', html)
    return m.group(1) if m else ""


def test_carry_keeps_what_the_target_takes_and_drops_the_rest():
    qwen = registry.get("kie").models["qwen"]
    kept, dropped = run.carry({**PARAMS, "acceleration_level": "turbo"}, qwen)
    assert kept == {"image_size": "square", "num_inference_steps": 20, "seed": 5}
    assert dropped == ["image_resolution", "acceleration_level"]  # not on qwen; not one of its choices
    kept, dropped = run.carry({"num_inference_steps": 80, "seed": 5}, qwen)
    assert kept == {"seed": 5} and dropped == ["num_inference_steps"]  # out of range
    assert run.variables("{a} {b} {a} {not valid} {_c1}") == ["a", "b", "_c1"]
    assert run.substitute("{a} and {b}", {"a": "{b}", "b": "x"}) == "{b} and x"


def test_run_on_another_model_fills_the_form_lists_dropped_fields_and_the_job_links_back(client_in, team, user):
    p = util.prompt(team, user, "Lighthouse", TEXT, params=PARAMS)
    v = p.current
    url = reverse("version_run", args=[v.uuid])
    page = client_in.get(url).content.decode()
    assert 'name="var_subject"' in page and 'name="var_surface"' in page
    assert '<option value="kie:seedream-v4" selected>' in page and '<option value="kie:qwen">' in page
    # Variables are required and limited.
    r = client_in.post(url, {"target": "kie:qwen", "var_subject": "lighthouse"})
    assert r.status_code == 400 and "This field is required." in r.content.decode()
    r = client_in.post(url, {"target": "kie:qwen", "var_subject": "x" * 301, "var_surface": "cliff"})
    assert r.status_code == 400 and "At most 300 characters (this has 301)." in r.content.decode()
    r = client_in.post(url, {"target": "kie:qwen", "var_subject": "lighthouse", "var_surface": "cliff"})
    assert r.status_code == 302 and r["Location"].startswith("/?provider=kie&model=qwen&prefill=")
    form = client_in.get(r["Location"]).content.decode()
    assert "a lighthouse on a cliff, seen from the lighthouse&#x27;s side" in form
    assert "Running version 1 of Lighthouse." in form and "left out: image_resolution." in form
    assert 'value="5"' in form  # the seed came along
    client_in.post(reverse("playground") + "?provider=kie&model=qwen", {
        "prompt": "a lighthouse on a cliff, seen from the lighthouse's side", "image_size": "square",
        "num_inference_steps": "20", "acceleration_level": "none", "seed": "5", "origin": _origin_of(form)})
    gen = Generation.objects.get()
    assert (gen.model, gen.prompt_version_uuid) == ("qwen", v.uuid)


def test_a_prompt_too_long_for_the_target_after_substitution_is_refused(client_in, team, user):
    p = util.prompt(team, user, "Long", "y" * 990 + " {x}", params={})
    r = client_in.post(reverse("version_run", args=[p.current.uuid]), {"target": "kwiki:generate", "var_x": "z" * 20})
    assert r.status_code == 400
    assert "With these values the prompt has 1011 characters; " in r.content.decode()


def _run(team, user, version, prompt, seconds, *, failed=False):
    make = factories.failed_job if failed else factories.finished_job
    gen = make(team, user, "kie", "seedream-v4", prompt=prompt, num_inference_steps=4,
               prompt_version_uuid=version.uuid)
    Generation.objects.filter(pk=gen.pk).update(finished_at=gen.created_at + timedelta(seconds=seconds))
    return gen


def test_the_version_page_counts_the_runs_the_viewer_may_see(client_in, team, user, other_team, other_user):
    p = util.prompt(team, user, "Kite", "a red kite")
    v = p.current
    first = _run(team, user, v, "a red kite", 10)
    second = _run(team, user, v, "a red kite, windy", 40)
    third = _run(team, user, v, "a red kite, calm", 20)
    failed = _run(team, user, v, "a red kite, failed", 5, failed=True)
    assert [g.status for g in (first, second, third, failed)] == ["succeeded"] * 3 + ["failed"]
    # Not counted: another version's run, a teammate's private run, another team's.
    bob = util.teammate(team)
    util.prompt(team, user, "Other")
    factories.job(team, user, "kie", "seedream-v4", prompt="unrelated")
    hidden = create.create(team=team, owner=bob, provider="kie", model="seedream-v4", params={"prompt": "bob's"},
                         prompt_version_uuid=v.uuid, visibility=Generation.PRIVATE)
    foreign = create.create(team=other_team, owner=other_user, provider="kie", model="seedream-v4",
                          params={"prompt": "theirs"}, prompt_version_uuid=v.uuid)
    Favorite.objects.create(user=user, generation=second)
    page = client_in.get(v.get_absolute_url()).content.decode()
    assert '<dd data-testid="stat-runs">4</dd>' in page
    assert '<dd data-testid="stat-success">75% <span class="muted">(3 of 4 finished)</span>' in page
    costs = [g.credits_used for g in (first, second, third)]
    assert len(set(costs)) == 1 and costs[0] == 3.5  # each captured 3.5 KIE credits
    assert '<dd data-testid="stat-cost">3.5 KIE credits (about $0.0175)</dd>' in page
    assert '<dd data-testid="stat-median">20.0 s</dd>' in page
    # The strip: the starred run first, then the newest; each image links to its generation.
    strip = page.split('data-testid="strip"')[1]
    order = [m for m in re.findall(r'href="/g/([0-9a-f-]+)/"', strip)]
    assert order == [str(second.uuid), str(third.uuid), str(first.uuid)]
    assert str(hidden.uuid) not in page and str(foreign.uuid) not in page
    # The job links back to its version (the detail page names it by its uuid).
    assert first.prompt_version_uuid == v.uuid


def test_a_version_without_runs_says_so(client_in, team, user):
    page = client_in.get(util.prompt(team, user).current.get_absolute_url()).content.decode()
    assert '<dd data-testid="stat-runs">0</dd>' in page and "No images from this version yet." in page
    assert '<dd data-testid="stat-success">-</dd>' in page and '<dd data-testid="stat-cost">-</dd>' in page
    assert Prompt.objects.count() == 1
