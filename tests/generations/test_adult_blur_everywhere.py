"""An adult result of someone else is blurred wherever its thumbnail shows,
not only in the gallery and on its page: the prompt library's image strip and
the owner's Credits page (costliest generations) too. Its owner sees it plain."""

from playground.generations.pipeline import create
from playground.generations.models import Generation

from tests.helpers import run_tasks
from tests.library import util


def test_a_teammates_adult_result_is_blurred_in_the_library_strip_and_on_the_credits_page(
        client, client_in, sandbox, team, user, settings):
    settings.CREDIT_PRICES = {"kie": "0.005"}
    bob = util.teammate(team)
    version = util.prompt(team, user, "Portrait study", "a portrait in soft light").current
    gen = create.create(team=team, owner=bob, provider="kie", model="seedream-v4",
                      params={"prompt": "a portrait in soft light"}, prompt_version_uuid=version.uuid)
    run_tasks(until=gen)
    assert gen.status == Generation.SUCCEEDED
    Generation.objects.filter(pk=gen.pk).update(is_adult=True)
    thumb = f"/images/{gen.images.get().uuid}/thumb"

    def frame_of(page):
        """The class of the frame around the thumbnail."""
        before = page.split(thumb)[0]
        return before[before.rindex("<span class="):]

    library = client_in.get(version.get_absolute_url()).content.decode()
    assert "adult-blur" in frame_of(library)
    credits = client_in.get("/credits/").content.decode()  # alice owns the team: sees bob's spend
    assert "adult-blur" in frame_of(credits)

    client.force_login(bob)  # the owner of the result
    assert "adult-blur" not in frame_of(client.get(version.get_absolute_url()).content.decode())
