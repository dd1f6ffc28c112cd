"""Saving a prompt from a generation or from the playground form (its values,
without images), the visibility default, and the list: mine and the team's
shared ones, searched by title, text or tag, filtered by tag, labels shown."""

from django.urls import reverse

from playground.accounts.models import Membership
from playground.library.models import Label, LabelMove, Prompt

from tests import factories
from tests.library import util


def test_save_a_prompt_from_a_finished_generation(client_in, team, user):
    gen = factories.finished_job(team, user, "kie", "seedream-v4", prompt="a red kite over dunes",
                                 num_inference_steps=12, image_size="portrait_4_3")
    detail = client_in.get(gen.get_absolute_url()).content.decode()
    link = reverse("library_new") + f"?from={gen.uuid}"
    assert f'href="{link}"' in detail
    page = client_in.get(link).content.decode()
    assert "a red kite over dunes" in page and "<dt>Steps</dt><dd>12</dd>" in page
    assert 'value="team" required id="id_visibility_0" checked' in page
    r = client_in.post(reverse("library_new"), {"step": "save", "from": str(gen.uuid), "title": "Kite",
                                                "text": "a red kite over dunes", "tags": "sky, Kites, sky",
                                                "notes": "good at 12 steps", "visibility": "team"})
    p = Prompt.objects.get()
    assert r["Location"] == p.get_absolute_url()
    v = p.current
    assert (p.title, p.owner, p.team, p.visibility) == ("Kite", user, team, Prompt.SHARED)
    assert (v.number, v.text, v.provider, v.model, v.tags, v.notes) == (
        1, "a red kite over dunes", "kie", "seedream-v4", ["sky", "Kites"], "good at 12 steps")
    assert v.params["num_inference_steps"] == 12 and v.params["image_size"] == "portrait_4_3"
    assert "prompt" not in v.params and "seed" in v.params


def test_the_visibility_default_follows_the_members_preference(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a tram in snow")
    Membership.objects.filter(team=team, user=user).update(share_by_default=False)
    page = client_in.get(reverse("library_new") + f"?from={gen.uuid}").content.decode()
    assert 'value="private" required id="id_visibility_1" checked' in page
    assert 'value="team" required id="id_visibility_0" checked' not in page


def test_a_generation_of_someone_else_cannot_be_saved(client_in, team, user, other_team, other_user):
    foreign = factories.job(other_team, other_user, "kie", "seedream-v4", prompt="someone else's")
    assert client_in.get(reverse("library_new") + f"?from={foreign.uuid}").status_code == 404
    assert client_in.post(reverse("library_new"), {"step": "save", "from": str(foreign.uuid), "title": "x",
                                                   "text": "x", "visibility": "team"}).status_code == 404
    assert client_in.get(reverse("library_new") + "?from=not-a-uuid").status_code == 404
    assert not Prompt.objects.exists()


def test_save_from_the_playground_form_keeps_its_values(client_in, team, user):
    page = client_in.get(reverse("playground") + "?provider=kie&model=qwen").content.decode()
    assert 'formaction="/library/new?provider=kie&model=qwen" formmethod="post" formnovalidate' in page
    fields = {"prompt": "a neon sign reading OPEN", "image_size": "landscape_16_9", "num_inference_steps": "25",
              "acceleration_level": "high", "seed": "", "submit_token": "x"}
    r = client_in.post(reverse("library_new") + "?provider=kie&model=qwen", fields)
    assert r.status_code == 302 and "draft=" in r["Location"]
    # Through htmx (the button inside the htmx form) the browser is sent there.
    hx = client_in.post(reverse("library_new") + "?provider=kie&model=qwen", fields, headers={"HX-Request": "true"})
    assert "draft=" in hx["HX-Redirect"]
    page = client_in.get(r["Location"]).content.decode()
    assert "a neon sign reading OPEN" in page and "<dt>Acceleration</dt><dd>High</dd>" in page
    draft = r["Location"].split("draft=")[1]
    client_in.post(reverse("library_new"), {"step": "save", "draft": draft, "title": "Neon", "text": "a neon sign",
                                            "visibility": "private"})
    v = Prompt.objects.get().current
    assert (v.provider, v.model) == ("kie", "qwen")
    assert v.params == {"image_size": "landscape_16_9", "num_inference_steps": 25, "acceleration_level": "high"}
    assert Prompt.objects.get().visibility == Prompt.PRIVATE
    assert client_in.get(reverse("library_new") + "?draft=nope").status_code == 404
    assert client_in.post(reverse("library_new") + "?provider=kie&model=nope", fields).status_code == 404


def test_the_list_shows_mine_and_shared_ones_with_search_tags_and_labels(client_in, team, user):
    bob = util.teammate(team)
    mine = util.prompt(team, user, "Harbour", "boats at dawn", tags=["sea", "Morning"])
    util.prompt(team, bob, "Forest path", "a mossy path between pines", tags=["woods"])
    util.prompt(team, bob, "Bob's secret", "hidden", visibility=Prompt.PRIVATE)
    label = Label.objects.create(prompt=mine, name="best", version=mine.current)
    LabelMove.objects.create(label=label, to_version=mine.current, moved_by=user)
    url = reverse("library")
    page = client_in.get(url).content.decode()
    assert "Harbour" in page and "Forest path" in page and "Bob&#x27;s secret" not in page
    assert "best &rarr; v1" in page
    titles = lambda r: [t for t in ("Harbour", "Forest path") if f">{t}</a>" in r.content.decode()]  # noqa: E731
    assert titles(client_in.get(url, {"q": "pines"})) == ["Forest path"]
    assert titles(client_in.get(url, {"q": "harb"})) == ["Harbour"]
    assert titles(client_in.get(url, {"q": "morning"})) == ["Harbour"]
    assert titles(client_in.get(url, {"tag": "sea"})) == ["Harbour"]
    assert titles(client_in.get(url, {"tag": "se"})) == []
    assert titles(client_in.get(url, {"tag": "WOODS"})) == ["Forest path"]
    assert titles(client_in.get(url, {"q": "hidden"})) == []
    assert titles(client_in.get(url, {"scope": "mine"})) == ["Harbour"]


def test_the_list_costs_the_same_queries_for_few_or_many_prompts(client_in, team, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client_in.get(reverse("library")).status_code == 200
        return len(ctx.captured_queries)

    for i in range(2):
        p = util.prompt(team, user, f"P{i}", tags=["a", "b"])
        Label.objects.create(prompt=p, name="best", version=p.current)
    few = count()
    for i in range(2, 8):
        p = util.prompt(team, user, f"P{i}", tags=["c"])
        Label.objects.create(prompt=p, name="best", version=p.current)
    assert count() == few
