"""The team owner's page for API model aliases."""

from playground.api.models import ModelAlias
from tests.helpers import login


def test_owner_adds_and_deletes_an_alias(client_in, team):
    page = client_in.get("/team/api/aliases/")
    assert page.status_code == 200 and "kie/seedream-v4" in page.content.decode()
    r = client_in.post("/team/api/aliases/", {"name": "fast", "target": "kie/seedream-v4"})
    assert r.status_code == 302
    alias = ModelAlias.objects.get(team=team)
    assert (alias.name, alias.target) == ("fast", "kie/seedream-v4")
    assert "fast" in client_in.get("/team/api/aliases/").content.decode()
    r = client_in.post("/team/api/aliases/", {"name": "fast", "target": "kwiki/generate"})
    assert r.status_code == 400 and "already has an alias" in r.content.decode()
    r = client_in.post(f"/team/api/aliases/{alias.uuid}/delete")
    assert r.status_code == 302 and not ModelAlias.objects.exists()


def test_bad_names_and_targets_are_shown_on_their_field(client_in):
    r = client_in.post("/team/api/aliases/", {"name": "kie/x", "target": "kie/seedream-v4"})
    assert r.status_code == 400 and "no /" in r.content.decode()
    r = client_in.post("/team/api/aliases/", {"name": "ok", "target": "kie/nothing"})
    assert r.status_code == 400 and "Not a configured model." in r.content.decode()
    assert not ModelAlias.objects.exists()


def test_members_and_other_teams_cannot_change_aliases(bob, team, other_user, other_team):
    alias = ModelAlias.objects.create(team=team, name="fast", target="kie/seedream-v4")
    r = login(bob).post("/team/api/aliases/", {"name": "mine", "target": "kie/seedream-v4"})
    assert r.status_code == 302 and ModelAlias.objects.count() == 1
    r = login(other_user).post(f"/team/api/aliases/{alias.uuid}/delete")
    assert r.status_code == 404 and ModelAlias.objects.filter(pk=alias.pk).exists()


def test_owners_find_the_alias_page_from_the_team_and_account_pages_members_do_not(client_in, bob, team):
    for url in ("/team/", "/account/"):
        page = client_in.get(url).content.decode()
        assert 'href="/team/api/aliases/"' in page and "/v1</code>" in page, url
    for url in ("/team/", "/account/"):
        page = login(bob).get(url).content.decode()
        assert 'href="/team/api/aliases/"' not in page, url
