"""Versions never change: an edit saves a new one (with its message), an
unchanged edit saves nothing and says so. Forks link to their origin; labels
move and keep their history. Every text field has a limit with a clear error."""

from django.urls import reverse
import pytest

from playground.library.models import ImmutableVersion, Label, LabelMove, Prompt, PromptVersion

from tests.library import util


def test_a_saved_version_cannot_be_changed_or_deleted(team, user):
    p = util.prompt(team, user)
    v1 = p.current
    v1.text = "something else"
    with pytest.raises(ImmutableVersion):
        v1.save()
    with pytest.raises(ImmutableVersion):
        v1.delete()
    with pytest.raises(ImmutableVersion):
        PromptVersion.objects.filter(pk=v1.pk).update(text="x")
    with pytest.raises(ImmutableVersion):
        PromptVersion.objects.filter(pk=v1.pk).delete()
    assert PromptVersion.objects.get(pk=v1.pk).text == "a lighthouse in fog"


def test_an_edit_makes_v2_and_leaves_v1_as_it_was(client_in, team, user):
    p = util.prompt(team, user, tags=["coast"])
    url = reverse("prompt_edit", args=[p.uuid])
    r = client_in.post(url, {"text": "a lighthouse in thick fog, at night", "tags": "coast, night",
                             "notes": "darker", "message": "Night version"}, follow=True)
    assert "Saved version 2." in r.content.decode()
    v1, v2 = p.versions.order_by("number")
    assert (v1.number, v1.text, v1.tags, v1.message) == (1, "a lighthouse in fog", ["coast"], "First version")
    assert (v2.number, v2.text, v2.tags, v2.notes, v2.message) == (
        2, "a lighthouse in thick fog, at night", ["coast", "night"], "darker", "Night version")
    assert (v2.provider, v2.model, v2.params) == (v1.provider, v1.model, v1.params)
    p.refresh_from_db()
    assert p.current == v2
    page = client_in.get(reverse("prompt", args=[p.uuid])).content.decode()
    assert "Night version" in page and "v2" in page and "v1" in page
    # The same values again: no v3, and the page says so.
    r = client_in.post(url, {"text": "a lighthouse in thick fog, at night", "tags": "coast,night", "notes": "darker",
                             "message": "again"}, follow=True)
    assert "Nothing changed, so no new version was saved (still v2)." in r.content.decode()
    assert p.versions.count() == 2


def test_every_text_field_has_a_limit_with_a_clear_error(client_in, team, user):
    p = util.prompt(team, user)
    edit = reverse("prompt_edit", args=[p.uuid])
    cases = [
        ({"text": "x" * 5001}, "At most 5000 characters (this has 5001)."),
        ({"text": "ok", "notes": "n" * 2001}, "At most 2000 characters (this has 2001)."),
        ({"text": "ok", "message": "m" * 201}, "At most 200 characters (this has 201)."),
        ({"text": "ok", "tags": "t" * 41}, "Each tag has at most 40 characters"),
        ({"text": "ok", "tags": ",".join(f"t{i}" for i in range(11))}, "At most 10 tags (11 given)."),
        ({"text": ""}, "This field is required."),
    ]
    for data, error in cases:
        r = client_in.post(edit, data)
        assert r.status_code == 400 and error in r.content.decode(), data
    assert p.versions.count() == 1
    label = client_in.post(reverse("prompt_label", args=[p.uuid]), {"name": "b" * 41, "version": "1"})
    assert label.status_code == 400 and "At most 40 characters (this has 41)." in label.content.decode()
    assert not Label.objects.exists()
    gen_free = client_in.post(reverse("library_new") + "?provider=kie&model=seedream-v4", {"prompt": "a pier"})
    new_url = gen_free["Location"]
    form = {"step": "save", "draft": new_url.split("draft=")[1], "text": "a pier", "visibility": "team"}
    r = client_in.post(reverse("library_new"), {**form, "title": "T" * 201})
    assert r.status_code == 400 and "At most 200 characters (this has 201)." in r.content.decode()
    assert Prompt.objects.count() == 1


def test_a_fork_is_the_viewers_own_prompt_starting_from_the_forked_version(client, team, user):
    p = util.prompt(team, user, "Harbour", "a harbour at dawn", tags=["sea"])
    p.add_version(text="a harbour at dusk", provider="kie", model="seedream-v4", params={"image_size": "square"},
                  message="dusk", by=user)
    bob = util.teammate(team)
    client.force_login(bob)
    r = client.post(reverse("prompt_fork", args=[p.uuid]), {"version": "1"})
    fork = Prompt.objects.get(owner=bob)
    assert r["Location"] == fork.get_absolute_url()
    assert fork.forked_from == p.versions.get(number=1) and fork.title == "Harbour (fork)"
    v = fork.versions.get()
    assert (v.number, v.text, v.tags, v.params, v.created_by) == (
        1, "a harbour at dawn", ["sea"], {"image_size": "square", "num_inference_steps": 20}, bob)
    page = client.get(fork.get_absolute_url()).content.decode()
    assert f'href="{p.versions.get(number=1).get_absolute_url()}" data-testid="forked-from">Harbour v1' in page
    # The origin lists its forks.
    assert "Harbour (fork)" in client.get(p.get_absolute_url()).content.decode()


def test_the_owner_sets_and_moves_a_label_and_every_move_is_kept(client_in, team, user):
    p = util.prompt(team, user)
    p.add_version(text="a lighthouse in rain", provider="kie", model="seedream-v4", params={}, by=user)
    url = reverse("prompt_label", args=[p.uuid])
    r = client_in.post(url, {"name": "best", "version": "1"}, follow=True)
    assert "Label “best” set on v1." in r.content.decode()
    r = client_in.post(url, {"name": "best", "version": "2"}, follow=True)
    assert "Label “best” moved from v1 to v2." in r.content.decode()
    r = client_in.post(url, {"name": "best", "version": "2"}, follow=True)
    assert "“best” already points at v2." in r.content.decode()
    label = Label.objects.get()
    assert label.version.number == 2
    moves = [(m.from_version and m.from_version.number, m.to_version.number, m.moved_by)
             for m in LabelMove.objects.order_by("moved_at", "id")]
    assert moves == [(None, 1, user), (1, 2, user)]
    page = client_in.get(p.get_absolute_url()).content.decode()
    assert "best</strong> moved from v1 to v2 by alice" in page and "best</strong> set on v1 by alice" in page
    assert client_in.post(url, {"name": "best", "version": "7"}).status_code == 400  # no such version


def test_deleting_its_owner_takes_a_prompts_versions_and_labels_and_unlinks_its_forks(team, user):
    from django.contrib.auth import get_user_model

    p = util.prompt(team, user)
    label = Label.objects.create(prompt=p, name="best", version=p.current)
    LabelMove.objects.create(label=label, to_version=p.current, moved_by=user)
    bob = util.teammate(team)
    fork = util.prompt(team, bob, "Fork")
    Prompt.objects.filter(pk=fork.pk).update(forked_from=p.current)
    get_user_model().objects.filter(pk=user.pk).delete()
    assert not PromptVersion.objects.filter(prompt=p).exists() and not Label.objects.exists()
    fork.refresh_from_db()
    assert fork.forked_from is None and fork.versions.count() == 1
