"""Another team's objects are a 404 everywhere, never a 403 (RELIABILITY 8)."""

from django.urls import reverse
import pytest

from playground.generations.pipeline import create
from playground.accounts.models import Membership
from playground.generations.models import InputImage

from tests.helpers import run_tasks


@pytest.fixture
def finished(sandbox, team, user):
    gen = create.create(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "a pine forest"})
    run_tasks(until=gen)
    return gen


def urls_of(gen):
    img = gen.images.get()
    return [
        reverse("generation", args=[gen.uuid]),
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
    inp = _input_of(finished.team, finished.owner)
    for url in urls_of(finished) + [reverse("playground"), reverse("gallery"), reverse("credits"), reverse("team"),
                                    reverse("poll_jobs"), reverse("estimate", args=["kie", "seedream-v4"]),
                                    reverse("input_image", args=[inp.uuid])]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


# --- every URL, for a viewer in another team and another member of the same team ---


def _input_of(team, user):
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buf, "PNG")
    return InputImage.from_bytes(team=team, owner=user, data=buf.getvalue())


def every_url(gen, inp):
    img = gen.images.get()
    return urls_of(gen) + [
        reverse("image", args=[img.uuid]) + "?download=1",
        reverse("input_image", args=[inp.uuid]),
    ]


@pytest.fixture(params=["another team", "another member of the same team"])
def viewer(request, client, team, other_user, other_team):
    if request.param == "another member of the same team":
        Membership.objects.create(team=team, user=other_user, role=Membership.MEMBER)
        client.force_login(other_user)
        client.post(reverse("switch_team"), {"team": str(team.uuid)})
    else:
        client.force_login(other_user)
    return client


def test_the_owner_opens_every_url_and_sees_their_job_everywhere(client, user, finished):
    inp = _input_of(finished.team, user)
    client.force_login(user)
    for url in every_url(finished, inp):
        assert client.get(url).status_code == 200, url
    assert f'id="job-{finished.uuid}"' in client.get(reverse("poll_jobs") + "?since=0").content.decode()  # as a new card
    assert "a pine forest" in client.get(reverse("playground") + f"?provider=kie&model=seedream-v4"
                                                                 f"&remix={finished.uuid}").content.decode()
    assert str(inp.uuid) in client.get(reverse("playground") + f"?input={inp.uuid}").content.decode()
    assert str(finished.images.get().uuid) in client.get(reverse("gallery")).content.decode()
    response = client.post(reverse("use_as_input", args=[finished.images.get().uuid]))
    assert response.status_code == 302 and "input=" in response["Location"]


def test_someone_else_gets_404_at_every_url_and_sees_the_job_nowhere(viewer, finished, team, user):
    """Another team never sees it; a teammate does not see a private job."""
    finished.visibility = finished.PRIVATE
    finished.save(update_fields=["visibility"])
    inp = _input_of(team, user)
    img = finished.images.get()
    for url in every_url(finished, inp):
        assert viewer.get(url).status_code == 404, url
        assert viewer.get(url, HTTP_HX_REQUEST="true").status_code == 404, url
    assert viewer.post(reverse("use_as_input", args=[img.uuid])).status_code == 404
    assert viewer.post(reverse("cancel", args=[finished.uuid])).status_code == 404
    assert InputImage.objects.count() == 1  # use_as_input made nothing
    # The job poll: the job is unknown to them (nothing to poll: 286, empty), and they have no job of their own.
    for query in (f"?c={finished.uuid}:0", "?since=0"):
        response = viewer.get(reverse("poll_jobs") + query)
        assert response.status_code == 286 and response.content == b"", query
    # Remix and "use as input" links of someone else's objects prefill nothing.
    page = viewer.get(reverse("playground") + f"?provider=kie&model=seedream-v4&remix={finished.uuid}")
    assert page.status_code == 200 and "a pine forest" not in page.content.decode()
    page = viewer.get(reverse("playground") + f"?input={inp.uuid}").content.decode()
    assert str(inp.uuid) not in page
    # The estimate names no object: it answers the same for everyone with a team.
    assert viewer.get(reverse("estimate", args=["kie", "seedream-v4"])).status_code == 200
    assert str(img.uuid) not in viewer.get(reverse("gallery")).content.decode()
    credits = viewer.get(reverse("credits")).content.decode()
    # No line of it (a teammate sees only the team total; another team nothing).
    assert str(finished.uuid) not in credits and "a pine forest" not in credits and "No charged generations yet." in credits
