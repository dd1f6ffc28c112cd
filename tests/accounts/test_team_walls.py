"""Another team's objects are a 404 everywhere, never a 403 (RELIABILITY 8)."""

from django.urls import reverse
import pytest

from playground.generations import jobs
from playground.accounts.models import Membership
from playground.generations.models import InputImage

from tests.helpers import run_tasks


@pytest.fixture
def finished(sandbox, team, user):
    gen = jobs.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pine forest"})
    run_tasks(until=gen)
    return gen


def urls_of(gen):
    img = gen.images.get()
    return [
        reverse("generation", args=[gen.uuid]),
        reverse("generation", args=[gen.uuid]) + "?poll=1",
        reverse("image", args=[img.uuid]),
        reverse("image_thumb", args=[img.uuid]),
    ]


def test_the_owner_sees_every_url_of_their_generation(client, user, finished):
    client.force_login(user)
    for url in urls_of(finished):
        assert client.get(url).status_code == 200, url


def test_another_team_gets_404_for_every_url(client, other_user, other_team, finished):
    client.force_login(other_user)
    for url in urls_of(finished):
        assert client.get(url).status_code == 404, url
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 404, url
    img = finished.images.get()
    assert client.post(reverse("use_as_input", args=[img.uuid])).status_code == 404
    assert client.post(reverse("cancel", args=[finished.uuid])).status_code == 404


def test_a_user_in_both_teams_sees_it_only_while_working_in_its_team(client, user, team, other_team, finished):
    Membership.objects.create(team=other_team, user=user)
    client.force_login(user)
    client.post(reverse("switch_team"), {"team": str(other_team.uuid)})
    assert client.get(reverse("generation", args=[finished.uuid])).status_code == 404
    client.post(reverse("switch_team"), {"team": str(team.uuid)})
    assert client.get(reverse("generation", args=[finished.uuid])).status_code == 200


def test_switching_to_a_team_you_are_not_in_is_a_404(client, user, team, other_team):
    client.force_login(user)
    assert client.post(reverse("switch_team"), {"team": str(other_team.uuid)}).status_code == 404


def test_gallery_lists_only_the_viewers_images(client, other_user, other_team, finished):
    client.force_login(other_user)
    page = client.get(reverse("gallery")).content.decode()
    assert str(finished.images.get().uuid) not in page
    assert "Nothing generated yet" in page


def test_an_input_image_of_another_team_cannot_be_used(client, other_user, other_team, team, user, sandbox):
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "navy").save(buf, "PNG")
    theirs = InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())
    client.force_login(other_user)
    assert client.get(reverse("input_image", args=[theirs.uuid])).status_code == 404


def test_pages_require_login(client, finished):
    for url in urls_of(finished) + [reverse("playground"), reverse("gallery"), reverse("credits"), reverse("team")]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
