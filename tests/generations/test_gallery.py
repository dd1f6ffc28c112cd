"""The gallery (/generations/): generations (not single images), mine or the
team's shared ones, filters in the URL (bad ones said, never a 500), text
search on both databases, keyset pagination that neither skips nor repeats
while new jobs arrive, and a constant number of queries per page."""

from datetime import datetime, timedelta
import io
import re
from urllib.parse import parse_qs, urlsplit

from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image
import pytest

from playground.generations import gallery_filters
from playground.generations.models import Favorite, Generation, GenerationImage, InputImage

from tests import factories


def png(color="olive", size=32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return buf.getvalue()


def finished(team, user, prompt, *, images=1, at=None, model="seedream-v4", **fields) -> Generation:
    """A KIE job queued as the form queues one, then given stored result
    images (as the pipeline stores them) without a provider round trip."""
    gen = factories.job(team, user, "kie", model, prompt=prompt)
    changes = {"status": Generation.SUCCEEDED, "credits_used": gen.cost_estimate, "finished_at": timezone.now(),
               **fields}
    if at is not None:
        changes["created_at"] = at
    Generation.objects.filter(pk=gen.pk).update(**changes)
    gen.refresh_from_db()
    for i in range(images):
        img = GenerationImage(generation=gen, index=i, content_type="image/png", width=32, height=32, bytes=100,
                              sha256="0" * 64)
        img.file.save(f"{team.uuid}/{gen.uuid.hex}-{i}.png", ContentFile(png()), save=False)
        img.thumbnail.save(f"{team.uuid}/{gen.uuid.hex}-{i}.webp", ContentFile(png()), save=False)
        img.save()
    return gen


@pytest.fixture
def bob(team):
    b = factories.user("bob")
    team.memberships.create(user=b, role="member")
    return b


def cards(response) -> list[str]:
    """The generation uuids of the cards on a page, in order."""
    return re.findall(r'id="gen-([0-9a-f-]{36})"', response.content.decode())


def older(response) -> str | None:
    m = re.search(r'<a href="([^"]+)" class="older"', response.content.decode())
    return m.group(1).replace("&amp;", "&") if m else None


def test_mine_lists_generations_with_provider_model_cost_and_a_count_of_extra_images(client_in, team, user, bob):
    two = finished(team, user, "two pears on a plate", images=2)
    failed = factories.job(team, user, "kie", "seedream-v4", prompt="a teapot")
    Generation.objects.filter(pk=failed.pk).update(status=Generation.FAILED, error_message="refused")
    finished(team, bob, "bob's shared bridge")
    response = client_in.get(reverse("gallery"))
    assert response.status_code == 200
    assert cards(response) == [str(failed.uuid), str(two.uuid)]  # mine only, newest first
    page = response.content.decode()
    assert "KIE.ai · Seedream" in page and "+1" in page
    assert str(two.images.get(index=0).uuid) in page  # the first image's thumbnail
    assert "failed" in page
    assert two.cost_estimate and f"{two.cost_estimate.normalize()} KIE credits" in page


def test_team_scope_shows_teammates_shared_items_with_their_names_and_not_their_private_ones(
        client_in, team, user, bob, other_team, other_user):
    shared = finished(team, bob, "a shared lighthouse")
    private = finished(team, bob, "a private lighthouse", visibility=Generation.PRIVATE)
    elsewhere = finished(other_team, other_user, "another team's lighthouse")
    mine = finished(team, user, "my lighthouse", visibility=Generation.PRIVATE)
    response = client_in.get(reverse("gallery") + "?scope=team")
    assert cards(response) == [str(mine.uuid), str(shared.uuid)]
    page = response.content.decode()
    assert 'data-testid="owner">bob<' in page and "a private lighthouse" not in page
    assert str(private.uuid) not in page and str(elsewhere.uuid) not in page
    assert cards(client_in.get(reverse("gallery") + "?scope=team&member=bob")) == [str(shared.uuid)]
    assert cards(client_in.get(reverse("gallery") + "?scope=team&member=alice")) == [str(mine.uuid)]


def test_filters_provider_model_status_dates_favorites_and_input(client_in, team, user):
    team.time_zone = "Pacific/Auckland"  # UTC+13 in November
    team.save()
    zone = team.zone
    old = finished(team, user, "an old barn", at=datetime(2026, 11, 1, 12, 0, tzinfo=zone))
    # 23:30 on the 20th in Auckland is still the 20th there (10:30 UTC on the 20th).
    late = finished(team, user, "a late barn", at=datetime(2026, 11, 20, 23, 30, tzinfo=zone), model="qwen")
    running = factories.job(team, user, "kie", "seedream-v4", prompt="a running barn")
    Generation.objects.filter(pk=running.pk).update(status=Generation.RUNNING)
    inp = InputImage.from_bytes(team=team, owner=user, data=png())
    edit = factories.job(team, user, "kie", "flux-kontext", prompt="an edited barn", image=str(inp.uuid))
    assert edit.has_input and not running.has_input
    Favorite.objects.create(user=user, generation=old)
    url = reverse("gallery")

    def listed(query):
        response = client_in.get(f"{url}?{query}")
        assert response.status_code == 200, query
        return set(cards(response))

    assert listed("model=qwen") == {str(late.uuid)}
    assert listed("provider=kie&model=flux-kontext") == {str(edit.uuid)}
    assert listed("provider=kvid") == set()
    assert listed("status=running") == {str(running.uuid)}
    assert listed("from=2026-11-20&to=2026-11-20") == {str(late.uuid)}
    assert listed("to=2026-11-19") == {str(old.uuid)}
    assert listed("favorites=1") == {str(old.uuid)}
    assert listed("has_input=1") == {str(edit.uuid)}
    assert listed("") == {str(g.uuid) for g in (old, late, running, edit)}


@pytest.mark.parametrize("query, message", [
    ("status=exploded", "Status: Select a valid choice"),
    ("from=yesterday", "From: Enter a valid date"),
    ("from=2026-11-20&to=2026-11-01", "The end date is before the start date"),
    ("scope=everyone", "Scope: Select a valid choice"),
    ("provider=nope", "Provider: Select a valid choice"),
    ("q=" + "x" * 201, "Search for at most 200 characters"),
    ("after=garbage", "That page link is not valid"),
    ("scope=team&member=nobody", "Nobody called &quot;nobody&quot; is in this team."),
    ("after=2026-13-45T99:00:00.000000Z_5", "That page link is not valid"),
])
def test_a_bad_filter_is_said_and_the_page_still_works(client_in, team, user, query, message):
    gen = finished(team, user, "a quiet harbour")
    response = client_in.get(reverse("gallery") + "?" + query)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="filter-errors"' in page and message in page
    assert str(gen.uuid) in page  # the valid filters (none here) still apply


def test_text_search_finds_every_word_of_the_prompt_on_this_database(client_in, team, user, bob):
    boats = finished(team, user, "Red sailing boats in a calm harbour at dawn")
    boat = finished(team, user, "a red boat on a lake")
    meadow = finished(team, user, "a green meadow with sheep")
    shared = finished(team, bob, "Sailing boats racing past a red lighthouse")
    finished(team, bob, "red sailing boats kept private", visibility=Generation.PRIVATE)
    url = reverse("gallery")
    assert set(cards(client_in.get(url + "?q=red+sailing"))) == {str(boats.uuid)}
    assert set(cards(client_in.get(url + "?q=RED"))) == {str(boats.uuid), str(boat.uuid)}
    assert set(cards(client_in.get(url + "?scope=team&q=sailing+red"))) == {str(boats.uuid), str(shared.uuid)}
    assert cards(client_in.get(url + "?q=unicorn")) == []
    # Words full-text search ignores still find what has them.
    assert set(cards(client_in.get(url + "?q=with"))) == {str(meadow.uuid)}
    # Quotes and operators are words, not syntax errors.
    assert client_in.get(url + "?q=%22red%27+%26+%7C+!boat").status_code == 200


def test_pagination_neither_skips_nor_repeats_while_generations_arrive(client_in, team, user, monkeypatch):
    monkeypatch.setattr(gallery_filters, "PAGE_SIZE", 4)
    same = timezone.now() - timedelta(hours=1)
    # Ties on created_at: the id breaks them.
    existing = [finished(team, user, f"tile {i}", at=same if i % 3 else same - timedelta(minutes=i))
                for i in range(11)]
    seen = []
    url = reverse("gallery")
    loads = 0
    while url:
        response = client_in.get(url)
        assert response.status_code == 200
        seen += cards(response)
        url = older(response)
        # A new generation arrives between two page loads.
        finished(team, user, f"arrived after page {loads}")
        loads += 1
    assert loads == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == {str(g.uuid) for g in existing}


def test_the_older_link_keeps_the_filters_and_htmx_gets_the_next_cards_alone(client_in, team, user, monkeypatch):
    monkeypatch.setattr(gallery_filters, "PAGE_SIZE", 2)
    for i in range(3):
        finished(team, user, f"a yellow kite {i}")
    finished(team, user, "a blue kite")
    response = client_in.get(reverse("gallery") + "?q=yellow&provider=kie")
    link = older(response)
    query = parse_qs(urlsplit(link).query)
    assert query["q"] == ["yellow"] and query["provider"] == ["kie"] and "after" in query
    page = response.content.decode()
    assert 'hx-trigger="revealed"' in page and 'hx-swap="outerHTML"' in page and f'hx-get="{link.replace("&", "&amp;")}"' in page
    more = client_in.get(link, HTTP_HX_REQUEST="true")
    body = more.content.decode()
    assert "<html" not in body and body.lstrip().startswith("<li")
    assert len(cards(more)) == 1 and older(more) is None


@pytest.mark.parametrize("scope", ["mine", "team"])
def test_a_page_costs_the_same_queries_whatever_its_size(client, team, user, bob, monkeypatch, scope):
    for i in range(24):
        gen = finished(team, bob if i % 2 else user, f"a lantern {i}", images=1 + i % 3)
        if i % 4 == 0:
            Favorite.objects.create(user=user, generation=gen)
    client.force_login(user)
    counts = {}
    for size in (3, 10):
        monkeypatch.setattr(gallery_filters, "PAGE_SIZE", size)
        client.get(reverse("gallery"))  # warm caches (session, team)
        with CaptureQueriesContext(connection) as q:
            response = client.get(reverse("gallery") + f"?scope={scope}")
        assert len(cards(response)) == size
        counts[size] = len(q.captured_queries)
        link = older(response)
        assert link
        with CaptureQueriesContext(connection) as q:
            client.get(link)
        assert len(q.captured_queries) == counts[size]
    assert counts[3] == counts[10]


def test_favorites_filter_is_the_viewers_own_stars(client, team, user, bob):
    gen = finished(team, bob, "a shared comet")
    Favorite.objects.create(user=bob, generation=gen)
    client.force_login(user)
    assert cards(client.get(reverse("gallery") + "?scope=team&favorites=1")) == []
    client.post(reverse("toggle_favorite", args=[gen.uuid]))
    assert cards(client.get(reverse("gallery") + "?scope=team&favorites=1")) == [str(gen.uuid)]


def test_someone_elses_adult_result_is_blurred_with_a_reveal_and_the_owners_own_is_not(client, team, user, bob):
    gen = finished(team, bob, "a figure study", is_adult=True)
    client.force_login(user)
    page = client.get(reverse("gallery") + "?scope=team").content.decode()
    card = page[page.index(f'id="gen-{gen.uuid}"'):]
    card = card[:card.index("</li>")]
    assert 'class="gallery-blur"' in card and 'data-testid="reveal"' in card and 'data-blurred="1"' in card
    client.force_login(bob)
    page = client.get(reverse("gallery")).content.decode()
    card = page[page.index(f'id="gen-{gen.uuid}"'):]
    card = card[:card.index("</li>")]
    assert "gallery-blur" not in card and "reveal" not in card and 'data-blurred=""' in card


def test_the_migration_backfills_has_input(team, user):
    import importlib

    from django.apps import apps

    mod = importlib.import_module("playground.generations.migrations.0004_gallery")
    inp = InputImage.from_bytes(team=team, owner=user, data=png())
    edit = factories.job(team, user, "kie", "flux-kontext", prompt="an edit", image=str(inp.uuid))
    plain = factories.job(team, user, "kie", "flux-kontext", prompt="no image")
    gone = factories.job(team, user, "kie", "seedream-v4", prompt="a removed model's job")
    Generation.objects.filter(pk=gone.pk).update(model="retired-edit", params={"prompt": "x", "image": "abc"})
    Generation.objects.update(has_input=False)
    mod.backfill_has_input(apps, None)
    assert set(Generation.objects.filter(has_input=True).values_list("pk", flat=True)) == {edit.pk, gone.pk}
    assert not Generation.objects.get(pk=plain.pk).has_input
