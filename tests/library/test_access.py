"""Every Library URL: another team gets 404, a teammate's private prompt is
404, a shared one is readable (and forkable) but only its owner edits it
and moves its labels."""

from django.urls import reverse
import pytest

from playground.library.models import Label, LabelMove, Prompt

from tests.library import util


def _urls(p):
    v = p.current
    return {
        "get": [reverse("prompt", args=[p.uuid]), reverse("prompt_diff", args=[p.uuid]),
                reverse("prompt_version", args=[v.uuid]), reverse("version_run", args=[v.uuid])],
        "post": [reverse("prompt_edit", args=[p.uuid]), reverse("prompt_fork", args=[p.uuid]),
                 reverse("prompt_label", args=[p.uuid]), reverse("version_run", args=[v.uuid]),
                 reverse("prompt_settings", args=[p.uuid])],
    }


POSTS = {"text": "changed", "name": "best", "version": "1", "target": "kie:seedream-v4", "title": "Renamed",
         "visibility": "private"}


def test_another_team_gets_404_everywhere(client, team, user, other_user, other_team):
    p = util.prompt(team, user)
    client.force_login(other_user)
    urls = _urls(p)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
    for url in urls["post"]:
        assert client.post(url, POSTS).status_code == 404, url
    assert "Lighthouse" not in client.get(reverse("library")).content.decode()
    assert Prompt.objects.count() == 1 and p.versions.count() == 1 and not Label.objects.exists()


def test_a_teammates_private_prompt_is_404_and_absent_from_the_list(client, team, user):
    bob = util.teammate(team)
    p = util.prompt(team, user, "Secret garden", visibility=Prompt.PRIVATE)
    client.force_login(bob)
    urls = _urls(p)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
    for url in urls["post"]:
        assert client.post(url, POSTS).status_code == 404, url
    assert "Secret garden" not in client.get(reverse("library")).content.decode()


def test_a_shared_prompt_is_readable_and_forkable_but_only_its_owner_edits_and_labels_it(client, team, user):
    bob = util.teammate(team)
    p = util.prompt(team, user, "Harbour at dawn")
    client.force_login(bob)
    urls = _urls(p)
    for url in urls["get"]:
        assert client.get(url).status_code == 200, url
    page = client.get(reverse("prompt", args=[p.uuid])).content.decode()
    assert "Save new version" not in page and "Set label" not in page  # no owner forms
    assert client.post(reverse("prompt_edit", args=[p.uuid]), {"text": "changed"}).status_code == 404
    assert client.post(reverse("prompt_label", args=[p.uuid]), {"name": "best", "version": "1"}).status_code == 404
    assert p.versions.count() == 1 and not LabelMove.objects.exists()
    assert client.post(reverse("prompt_fork", args=[p.uuid]), {"version": "1"}).status_code == 302
    assert Prompt.objects.filter(owner=bob).count() == 1


@pytest.mark.parametrize("name", ["library", "library_new"])
def test_pages_need_a_login(client, db, name):
    assert client.get(reverse(name)).status_code == 302


def test_the_owner_renames_a_prompt_and_changes_who_sees_it_and_nobody_else_can(client_in, team, user):
    from tests.helpers import login

    client = login(util.teammate(team))
    p = util.prompt(team, user, "Lighthouse")
    url = reverse("prompt_settings", args=[p.uuid])
    assert client.post(url, {"title": "Mine now", "visibility": "private"}).status_code == 404
    assert client_in.post(url, {"title": "x" * 201, "visibility": "team"}).status_code == 400
    response = client_in.post(url, {"title": "Lighthouse at dawn", "visibility": "private"})
    assert response.status_code == 302
    p.refresh_from_db()
    assert (p.title, p.visibility) == ("Lighthouse at dawn", Prompt.PRIVATE)
    assert p.versions.count() == 1  # the versions are untouched
    assert client.get(reverse("prompt", args=[p.uuid])).status_code == 404  # private now: gone for bob
