"""The gallery's per-item actions: favorite (htmx or a plain POST), share /
unshare and delete (the owner's alone), and several generations as one
streamed zip. Another team gets 404 everywhere; a teammate's private item
is a 404; a teammate's shared item can be starred but not changed."""

import io
import zipfile

from django.db import connection
from django.urls import reverse
import pytest

from playground.generations import gallery_filters, gallery_zip
from playground.generations.models import Favorite, Generation, GenerationImage
from playground.ledger.models import Entry

from tests import factories
from tests.generations.test_gallery import finished


@pytest.fixture
def bob(team):
    b = factories.user("bob")
    team.memberships.create(user=b, role="member")
    return b


def zip_of(response) -> zipfile.ZipFile:
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def action_urls(gen):
    return {
        "favorite": ("post", reverse("toggle_favorite", args=[gen.uuid]), {}),
        "visibility": ("post", reverse("set_visibility", args=[gen.uuid]), {"visibility": "private"}),
        "delete page": ("get", reverse("delete_generation", args=[gen.uuid]), {}),
        "delete": ("post", reverse("delete_generation", args=[gen.uuid]), {}),
        "zip": ("post", reverse("download_zip"), {"g": [str(gen.uuid)]}),
    }


def test_the_url_names_and_paths():
    import uuid

    u = uuid.uuid4()
    assert reverse("toggle_favorite", args=[u]) == f"/g/{u}/favorite"
    assert reverse("set_visibility", args=[u]) == f"/g/{u}/visibility"
    assert reverse("delete_generation", args=[u]) == f"/g/{u}/delete"
    assert reverse("download_zip") == "/generations/zip"


def test_another_team_gets_404_at_every_action_and_nothing_changes(client, team, user, other_user, other_team):
    gen = finished(team, user, "a walled garden")
    client.force_login(other_user)
    for name, (method, url, data) in action_urls(gen).items():
        assert getattr(client, method)(url, data).status_code == 404, name
        assert getattr(client, method)(url, data, HTTP_HX_REQUEST="true").status_code == 404, name
    gen.refresh_from_db()
    assert gen.visibility == Generation.SHARED and not Favorite.objects.exists()


def test_a_teammates_private_item_is_404_at_every_action(client, team, user, bob):
    gen = finished(team, bob, "a private sketch", visibility=Generation.PRIVATE)
    client.force_login(user)
    for name, (method, url, data) in action_urls(gen).items():
        assert getattr(client, method)(url, data).status_code == 404, name
    assert Generation.objects.filter(pk=gen.pk).exists() and not Favorite.objects.exists()


def test_a_teammates_shared_item_can_be_starred_and_zipped_but_only_its_owner_shares_or_deletes_it(
        client, team, user, bob):
    gen = finished(team, bob, "a shared sketch")
    client.force_login(user)
    urls = action_urls(gen)
    for name in ("visibility", "delete page", "delete"):
        method, url, data = urls[name]
        assert getattr(client, method)(url, data).status_code == 404, name
    assert client.post(urls["favorite"][1]).status_code == 302
    assert Favorite.objects.filter(user=user, generation=gen).exists()
    assert zip_of(client.post(urls["zip"][1], urls["zip"][2])).namelist() == ["a-shared-sketch.png"]
    gen.refresh_from_db()
    assert gen.visibility == Generation.SHARED


def test_the_star_toggles_with_htmx_and_without_js_goes_back(client_in, team, user):
    gen = finished(team, user, "a starry night")
    url = reverse("toggle_favorite", args=[gen.uuid])
    response = client_in.post(url, {"next": "/generations/?scope=team&q=night"})
    assert response.status_code == 302 and response["Location"] == "/generations/?scope=team&q=night"
    assert Favorite.objects.filter(user=user, generation=gen).count() == 1
    # An address elsewhere is not followed.
    assert client_in.post(url, {"next": "https://example.com/"})["Location"] == reverse("gallery")
    assert not Favorite.objects.exists()
    response = client_in.post(url, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith("<form") and 'aria-pressed="true"' in body
    body = client_in.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-pressed="false"' in body and not Favorite.objects.exists()


def test_the_owner_shares_and_unshares(client_in, team, user, bob):
    gen = finished(team, user, "a folded map")
    url = reverse("set_visibility", args=[gen.uuid])
    assert client_in.post(url, {"visibility": "private"}).status_code == 302
    gen.refresh_from_db()
    assert gen.visibility == Generation.PRIVATE
    body = client_in.post(url, {"visibility": "team"}, HTTP_HX_REQUEST="true").content.decode()
    gen.refresh_from_db()
    assert gen.visibility == Generation.SHARED and "Unshare" in body
    response = client_in.post(url, {"visibility": "everyone"}, follow=True)
    assert "Visibility must be" in response.content.decode()
    gen.refresh_from_db()
    assert gen.visibility == Generation.SHARED


def test_delete_asks_first_then_removes_the_row_and_its_files_and_the_ledger_keeps_its_entries(
        client_in, team, user, django_capture_on_commit_callbacks):
    gen = finished(team, user, "a paper boat", images=2)
    entries = list(Entry.objects.filter(generation_uuid=gen.uuid).values_list("pk", flat=True))
    assert entries
    files = [f for img in gen.images.all() for f in (img.file, img.thumbnail)]
    url = reverse("delete_generation", args=[gen.uuid])
    page = client_in.get(url).content.decode()
    assert "Delete this generation?" in page and gen.images.get(index=0).thumbnail_url() in page
    assert Generation.objects.filter(pk=gen.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_in.post(url)
    assert response.status_code == 302
    assert not Generation.objects.filter(pk=gen.pk).exists() and not GenerationImage.objects.exists()
    assert not any(f.storage.exists(f.name) for f in files)
    kept = Entry.objects.filter(pk__in=entries)
    assert kept.count() == len(entries) and all(e.generation_id is None and e.generation_uuid == gen.uuid
                                                for e in kept)
    assert "a paper boat" not in client_in.get(reverse("gallery")).content.decode()


def test_a_running_job_is_not_deleted(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="still going")
    response = client_in.post(reverse("delete_generation", args=[gen.uuid]), follow=True)
    assert "still running" in response.content.decode()
    assert Generation.objects.filter(pk=gen.pk).exists()


def test_the_zip_holds_the_images_the_viewer_may_see_with_names_from_the_prompt(client, team, user, bob,
                                                                              other_team, other_user):
    mine = finished(team, user, "A fox / in the snow?", images=2)
    twin = finished(team, user, "a fox in the snow")
    shared = finished(team, bob, "!!!")  # nothing safe in it: named after the model
    private = finished(team, bob, "bob's private fox", visibility=Generation.PRIVATE)
    elsewhere = finished(other_team, other_user, "a fox elsewhere")
    client.force_login(user)
    refs = [str(g.uuid) for g in (mine, twin, shared, private, elsewhere)] + ["not-a-uuid"]
    archive = zip_of(client.post(reverse("download_zip"), {"g": refs}))
    names = sorted(archive.namelist())
    assert names == ["a-fox-in-the-snow-2.png", "a-fox-in-the-snow-3.png", "a-fox-in-the-snow.png",
                     "seedream-v4.png"]
    with mine.images.get(index=0).file.open("rb") as fh:
        originals = {fh.read()}
    assert originals <= {archive.read(n) for n in names}
    assert archive.testzip() is None
    # Nothing the viewer may see: 404.
    assert client.post(reverse("download_zip"), {"g": [str(private.uuid), str(elsewhere.uuid)]}).status_code == 404
    assert client.post(reverse("download_zip")).status_code == 404


def test_the_zip_is_streamed_as_it_is_written(team, user):
    gens = [finished(team, user, f"a stream {i}") for i in range(3)]
    chunks = list(gallery_zip.stream_zip(GenerationImage.objects.filter(generation__in=gens)
                                     .select_related("generation")))
    assert sum(1 for c in chunks if c) >= 3  # a piece per file at least, not one blob at the end
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(chunks))).namelist()) == 3


def test_too_many_images_for_one_zip_is_a_clear_error(client_in, team, user, monkeypatch):
    monkeypatch.setattr(gallery_zip, "ZIP_MAX_IMAGES", 3)
    gens = [finished(team, user, f"a tile {i}", images=2) for i in range(2)]
    response = client_in.post(reverse("download_zip"), {"g": [str(g.uuid) for g in gens]}, follow=True)
    assert "Too many images for one zip: select at most 3 images." in response.content.decode()


def test_the_gallery_cards_carry_every_action(client_in, team, user, bob):
    gen = finished(team, user, "a clay pot")
    theirs = finished(team, bob, "bob's clay pot")
    page = client_in.get(reverse("gallery") + "?scope=team").content.decode()
    img = gen.images.get()
    for part in (reverse("toggle_favorite", args=[gen.uuid]), reverse("set_visibility", args=[gen.uuid]),
                 reverse("delete_generation", args=[gen.uuid]), f"{img.get_absolute_url()}?download=1",
                 reverse("use_as_input", args=[img.uuid]), f"remix={gen.uuid}", reverse("download_zip"),
                 f'name="g" value="{gen.uuid}"'):
        assert part in page, part
    # A teammate's item: star, download, remix; no share or delete.
    assert reverse("toggle_favorite", args=[theirs.uuid]) in page and f"remix={theirs.uuid}" in page
    assert reverse("set_visibility", args=[theirs.uuid]) not in page
    assert reverse("delete_generation", args=[theirs.uuid]) not in page


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the full-text index exists on PostgreSQL only")
def test_postgresql_has_the_prompt_search_index(db):
    with connection.cursor() as c:
        c.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'core_generation_prompt_fts'")
        (definition,) = c.fetchone()
    assert "gin" in definition and "to_tsvector" in definition
    # The gallery's search is the indexed expression: the planner can use it.
    sql, params = gallery_filters.search(Generation.objects.all(), "red boats")[:25].query.sql_with_params()
    with connection.cursor() as c:
        c.execute("SET LOCAL enable_seqscan = off")
        c.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in c.fetchall())
    assert "core_generation_prompt_fts" in plan, plan
