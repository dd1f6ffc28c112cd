"""Sharing on the generation page: teammates see a shared generation (who
made it, its images and its input images) and get a 404 for a private one;
another team gets a 404 everywhere. The owner's controls are the owner's;
every viewer may star. New jobs take the member's default, or the form's
"Share with the team" box."""

import io
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image
import pytest

from playground.generations.models import Generation, InputImage

from tests import factories
from tests.helpers import login

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
FIELDS = {"image_size": "square", "image_resolution": "1K", "num_inference_steps": "20"}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), "teal").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def bobs(team, bob):
    """Bob's finished generations: one shared with the team, one private, and
    a queued edit of his own upload (an input image) that is shared."""
    shared = factories.finished_job(team, bob, "kie", "seedream-v4", prompt="a harbour at noon")
    private = factories.finished_job(team, bob, "kie", "seedream-v4", prompt="a quiet attic",
                                     visibility=Generation.PRIVATE)
    upload = InputImage.from_bytes(team=team, owner=bob, data=png())
    edit = factories.job(team, bob, "kie", "recraft-upscale", image=str(upload.uuid))
    return {"shared": shared, "private": private, "edit": edit, "upload": upload}


def urls_of(gen):
    img = gen.images.first()
    out = [reverse("generation", args=[gen.uuid])]
    if img is not None:
        out += [img.get_absolute_url(), img.thumbnail_url()]
    for inp in gen.input_images().values():
        out.append(reverse("generation_input", args=[gen.uuid, inp.uuid]))
    return out


def test_a_teammate_sees_a_shared_generation_and_who_made_it(client_in, bobs):
    gen = bobs["shared"]
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert re.search(r'data-testid="made-by">by bob<', page)
    assert "Shared with the team" in page
    assert "a harbour at noon" in page
    for url in urls_of(gen):
        assert client_in.get(url).status_code == 200, url
    assert client_in.get(gen.get_absolute_url(), HTTP_HX_REQUEST="true").status_code == 200  # the card alone


def test_a_teammates_shared_input_image_is_served_through_the_generation(client_in, bobs):
    edit, upload = bobs["edit"], bobs["upload"]
    page = client_in.get(edit.get_absolute_url()).content.decode()
    scoped = reverse("generation_input", args=[edit.uuid, upload.uuid])
    assert f'src="{scoped}"' in page
    response = client_in.get(scoped)
    assert response.status_code == 200 and response["Content-Type"] == upload.content_type
    # The input itself stays its owner's: the owner-only URL is a 404 to alice.
    assert client_in.get(reverse("input_image", args=[upload.uuid])).status_code == 404
    # Through a generation, only an input its own parameters name.
    other = InputImage.from_bytes(team=edit.team, owner=edit.owner, data=png())
    assert client_in.get(reverse("generation_input", args=[edit.uuid, other.uuid])).status_code == 404
    assert client_in.get(reverse("generation_input", args=[bobs["shared"].uuid, upload.uuid])).status_code == 404


def test_a_private_generation_of_a_teammate_is_a_404_everywhere(client_in, bobs):
    Generation.objects.filter(pk=bobs["edit"].pk).update(visibility=Generation.PRIVATE)
    for gen in (bobs["private"], bobs["edit"]):
        for url in urls_of(gen):
            assert client_in.get(url).status_code == 404, url
            assert client_in.get(url, HTTP_HX_REQUEST="true").status_code == 404, url


def test_another_team_gets_a_404_for_everything(bobs, other_user, other_team):
    mallory = login(other_user)
    for gen in (bobs["shared"], bobs["private"], bobs["edit"]):
        for url in urls_of(gen):
            assert mallory.get(url).status_code == 404, url


def test_the_owner_sees_the_same_urls(bobs, bob):
    c = login(bob)
    for gen in bobs["shared"], bobs["private"], bobs["edit"]:
        for url in urls_of(gen):
            assert c.get(url).status_code == 200, url


# --- controls: the owner's, and the star for everyone ------------------------------

def test_share_and_delete_are_the_owners_and_the_star_everyones(client_in, bobs, bob, user, settings):
    gen = bobs["shared"]
    mine = login(bob).get(gen.get_absolute_url()).content.decode()
    assert f'action="/g/{gen.uuid}/visibility"' in mine and 'value="private"' in mine and "Unshare" in mine
    assert f'href="/g/{gen.uuid}/delete"' in mine
    assert f'action="/g/{gen.uuid}/favorite"' in mine
    theirs = client_in.get(gen.get_absolute_url()).content.decode()
    assert "/visibility" not in theirs and "/delete" not in theirs and "Unshare" not in theirs
    assert f'action="/g/{gen.uuid}/favorite"' in theirs and "&#9734; Star" in theirs
    gen.favorites.create(user=user)
    assert "&#9733; Starred" in client_in.get(gen.get_absolute_url()).content.decode()
    private = login(bob).get(bobs["private"].get_absolute_url()).content.decode()
    assert "Share with the team" in private and 'name="visibility" value="team"' in private
    # The controls work from the detail page and come back to it.
    back = {"next": gen.get_absolute_url()}
    assert client_in.post(reverse("set_visibility", args=[gen.uuid]), {"visibility": "private", **back}).status_code == 404
    response = login(bob).post(reverse("set_visibility", args=[gen.uuid]), {"visibility": "private", **back})
    assert response.status_code == 302 and response["Location"] == gen.get_absolute_url()
    gen.refresh_from_db()
    assert gen.visibility == "private"
    assert client_in.get(gen.get_absolute_url()).status_code == 404  # now private: gone for teammates
    evil = login(bob).post(reverse("set_visibility", args=[gen.uuid]), {"visibility": "team", "next": "https://evil.example/"})
    assert evil.status_code == 302 and "evil.example" not in evil["Location"]


def test_a_teammate_gets_no_cancel_on_a_running_shared_job(client_in, team, bob):
    gen = factories.job(team, bob, "kie", "seedream-v4", prompt="a slow river")
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert reverse("cancel", args=[gen.uuid]) not in page
    assert reverse("cancel", args=[gen.uuid]) in login(bob).get(gen.get_absolute_url()).content.decode()
    assert client_in.post(reverse("cancel", args=[gen.uuid])).status_code == 404


def test_polling_a_teammates_card_costs_what_polling_ones_own_does(client_in, team, user, bob):
    theirs = factories.job(team, bob, "kie", "seedream-v4", prompt="a field of barley")
    mine = factories.job(team, user, "kie", "seedream-v4", prompt="a field of oats")
    counts = []
    for gen in (mine, theirs):
        url = reverse("generation", args=[gen.uuid])
        client_in.get(url, HTTP_HX_REQUEST="true")  # warm: session, team
        with CaptureQueriesContext(connection) as ctx:
            assert client_in.get(url, HTTP_HX_REQUEST="true").status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


# --- the member's default and the form's box ---------------------------------------

def _box_checked(page: str) -> bool:
    tag = re.search(r'<input type="checkbox" name="visibility"[^>]*>', page).group(0)
    return " checked" in tag


def test_new_jobs_take_the_default_or_the_forms_box(client_in, team, user):
    membership = team.memberships.get(user=user)
    assert _box_checked(client_in.get(URL).content.decode())
    client_in.post(URL, {"prompt": "a shared tree", **FIELDS, "visibility": ["private", "team"]})
    client_in.post(URL, {"prompt": "a private tree", **FIELDS, "visibility": ["private"]})
    client_in.post(URL, {"prompt": "a default tree", **FIELDS})  # a client without the field
    membership.share_by_default = False
    membership.save()
    assert not _box_checked(client_in.get(URL).content.decode())
    client_in.post(URL, {"prompt": "a default bush", **FIELDS})
    client_in.post(URL, {"prompt": "a shared bush", **FIELDS, "visibility": ["private", "team"]})
    got = dict(Generation.objects.values_list("params__prompt", "visibility"))
    assert got == {"a shared tree": "team", "a private tree": "private", "a default tree": "team",
                   "a default bush": "private", "a shared bush": "team"}


def test_a_form_back_with_errors_keeps_the_box_as_sent(client_in, team, user):
    page = client_in.post(URL, {"prompt": "", **FIELDS, "visibility": ["private"]}).content.decode()
    assert "This field is required" in page or "required" in page
    assert not _box_checked(page)
    assert Generation.objects.count() == 0
