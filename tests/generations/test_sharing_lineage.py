"""Lineage on the generation page: where it came from (remix of, input
image from, run of a prompt version) and what was made from it, as links,
only what the viewer may see. And the adult blur: a teammate's adult result
is blurred until revealed; the owner's own never is."""

import re
import uuid

from django.urls import reverse
import pytest

from playground.generations.models import Generation, InputImage

from tests import factories
from tests.helpers import login

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
FIELDS = {"image_size": "square", "image_resolution": "1K", "num_inference_steps": "20"}


def _origin_of(html):
    m = re.search(r'name="origin" value="([^"]+)"', html)
    return m.group(1) if m else ""


def section(page: str, testid: str) -> str:
    m = re.search(rf'<ul class="lineage-list" data-testid="{testid}">(.*?)</ul>', page, re.S)
    return m.group(1) if m else ""


@pytest.fixture
def bobs_gen(team, bob):
    return factories.finished_job(team, bob, "kie", "seedream-v4", prompt="a lighthouse on a cliff",
                                  num_inference_steps=12)


def test_a_remix_of_a_teammates_shared_generation_is_prefilled_and_recorded(client_in, bobs_gen, bob):
    page = client_in.get(URL + f"&remix={bobs_gen.uuid}").content.decode()
    assert "a lighthouse on a cliff" in page and 'value="12"' in page
    client_in.post(URL, {"prompt": "a lighthouse on a cliff, at dusk", **FIELDS, "origin": _origin_of(page)})
    remix = Generation.objects.exclude(pk=bobs_gen.pk).get()
    assert remix.remix_of == bobs_gen
    # Her page links back to bob's; bob's lists her remix.
    mine = client_in.get(remix.get_absolute_url()).content.decode()
    came = section(mine, "came-from")
    assert "Remix of" in came and bobs_gen.get_absolute_url() in came and "by bob" in came
    assert bobs_gen.images.get().thumbnail_url() in came
    theirs = login(bob).get(bobs_gen.get_absolute_url()).content.decode()
    made = section(theirs, "made-from")
    assert remix.get_absolute_url() in made and "remix" in made and "by alice" in made
    assert "Made from it <span class=\"muted\">(1)</span>" in theirs


def test_input_image_from_links_the_generation_that_made_it_both_ways(client_in, bobs_gen, team, user, bob):
    img = bobs_gen.images.get()
    response = client_in.post(reverse("use_as_input", args=[img.uuid]), {"target": "kie:recraft-upscale"})
    inp = InputImage.objects.get(owner=user)
    assert inp.source == img and f"input={inp.uuid}" in response["Location"]
    upscale = factories.job(team, user, "kie", "recraft-upscale", image=str(inp.uuid))
    assert upscale.source_image == img
    page = client_in.get(upscale.get_absolute_url()).content.decode()
    came = section(page, "came-from")
    assert "Input image from" in came and bobs_gen.get_absolute_url() in came
    # Bob sees it under what was made from his, as used input.
    made = section(login(bob).get(bobs_gen.get_absolute_url()).content.decode(), "made-from")
    assert upscale.get_absolute_url() in made and "used its image as input" in made


def test_lineage_leaves_out_what_the_viewer_cannot_see(client_in, bobs_gen, team, user, bob):
    # Bob remixes alice's generation privately; then makes his own original private.
    original = factories.job(team, user, "kie", "seedream-v4", prompt="a wooden pier")
    hidden = factories.job(team, bob, "kie", "seedream-v4", prompt="a pier at night")
    Generation.objects.filter(pk=hidden.pk).update(remix_of=original, visibility=Generation.PRIVATE)
    shown = factories.job(team, bob, "kie", "seedream-v4", prompt="a pier at dawn")
    Generation.objects.filter(pk=shown.pk).update(remix_of=original)
    page = client_in.get(original.get_absolute_url()).content.decode()
    made = section(page, "made-from")
    assert shown.get_absolute_url() in made and hidden.get_absolute_url() not in made
    assert "Made from it <span class=\"muted\">(1)</span>" in page
    # Bob sees both of his remixes.
    bobs_view = section(login(bob).get(original.get_absolute_url()).content.decode(), "made-from")
    assert shown.get_absolute_url() in bobs_view and hidden.get_absolute_url() in bobs_view
    # A remix of a private generation: the viewer is not told where it came from.
    mine = factories.job(team, user, "kie", "seedream-v4", prompt="another pier")
    Generation.objects.filter(pk=mine.pk).update(remix_of=hidden)
    page = client_in.get(mine.get_absolute_url()).content.decode()
    assert 'data-testid="lineage"' not in page and hidden.get_absolute_url() not in page


def test_made_from_it_is_newest_first_and_capped_with_a_count(client_in, team, user, bob):
    from playground.generations import views_detail

    original = factories.job(team, user, "kie", "seedream-v4", prompt="a stone bridge")
    remixes = [factories.job(team, bob, "kie", "seedream-v4", prompt=f"a stone bridge {i}")
               for i in range(views_detail.LINEAGE_CAP + 2)]
    Generation.objects.filter(pk__in=[g.pk for g in remixes]).update(remix_of=original)
    page = client_in.get(original.get_absolute_url()).content.decode()
    made = section(page, "made-from")
    links = re.findall(r'href="/g/([0-9a-f-]+)/"', made)
    assert links == [str(g.uuid) for g in reversed(remixes)][:views_detail.LINEAGE_CAP]
    assert f"Made from it <span class=\"muted\">({views_detail.LINEAGE_CAP + 2})</span>" in page
    assert f"Showing the newest {views_detail.LINEAGE_CAP}" in page


def test_the_page_costs_the_same_queries_however_much_was_made_from_it(client_in, team, user, bob):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    original = factories.job(team, user, "kie", "seedream-v4", prompt="a clock tower")
    counts = []
    for n in (1, 6):
        while original.remixes.count() < n:
            factories.finished_job(team, bob, "kie", "seedream-v4", prompt=f"a clock tower {original.remixes.count()}",
                                   remix_of=original)
        with CaptureQueriesContext(connection) as ctx:
            page = client_in.get(original.get_absolute_url()).content.decode()
        assert f"Made from it <span class=\"muted\">({n})</span>" in page
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_a_run_of_a_prompt_version_says_so(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a windmill")
    Generation.objects.filter(pk=gen.pk).update(prompt_version_uuid=uuid.uuid4())
    page = client_in.get(gen.get_absolute_url()).content.decode()
    assert "Run of" in section(page, "came-from")


def test_no_lineage_no_section(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a barn")
    assert 'data-testid="lineage"' not in client_in.get(gen.get_absolute_url()).content.decode()


# --- adult blur -------------------------------------------------------------------------

def test_an_adult_result_is_blurred_for_a_teammate_until_revealed_never_for_its_owner(client_in, bobs_gen, bob):
    Generation.objects.filter(pk=bobs_gen.pk).update(is_adult=True)
    url = bobs_gen.get_absolute_url()
    page = client_in.get(url).content.decode()
    assert "adult-blur" in page
    assert f'href="{url}?reveal=1" data-reveal' in page
    revealed = client_in.get(url + "?reveal=1").content.decode()
    assert "adult-blur" not in revealed and "data-reveal" not in revealed
    own = login(bob).get(url).content.decode()
    assert "adult-blur" not in own and "data-reveal" not in own
    # A teammate's remix of it lists it blurred too (no reveal there: on its own page).
    remix = factories.job(bobs_gen.team, bobs_gen.owner, "kie", "seedream-v4", prompt="again")
    Generation.objects.filter(pk=remix.pk).update(remix_of=bobs_gen)
    came = section(client_in.get(remix.get_absolute_url() + "?reveal=1").content.decode(), "came-from")
    assert "adult-blur" in came


def test_a_card_of_a_teammates_adult_result_is_blurred(client_in, bobs_gen, bob, user):
    """The card (as a list shows it, not on the detail page) blurs it too."""
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from playground.generations.models import Generation as G

    Generation.objects.filter(pk=bobs_gen.pk).update(is_adult=True)
    gen = G.objects.select_related("owner").get(pk=bobs_gen.pk)
    for viewer, blurred in ((user, True), (bob, False)):
        request = RequestFactory().get("/generations/")
        request.user = viewer
        html = render_to_string("generations/generation.html#card", {"gen": gen, "on_detail": False}, request=request)
        assert ("adult-blur" in html) is blurred
        assert ("?reveal=1" in html) is blurred
        assert gen.images.get().thumbnail_url() in html


def test_the_reveal_script_is_loaded_and_inline_free(client_in, bobs_gen):
    page = client_in.get(bobs_gen.get_absolute_url()).content.decode()
    assert re.search(r'<script src="/static/reveal\.js[^"]*" defer></script>', page)


def test_a_remix_keeps_the_input_image_a_copy_for_a_teammate_made_once(client_in, team, user, bob):
    """Remixing a job that took an input image opens with that image picked:
    one's own as it is; a teammate's as a copy the remixer owns (made once,
    however often the remix is opened), so the new job can send it."""
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (96, 96), "olive").save(buf, "PNG")
    theirs = InputImage.from_bytes(team=team, owner=bob, data=buf.getvalue())
    upscale = factories.finished_job(team, bob, "kie", "recraft-upscale", image=str(theirs.uuid))
    url = reverse("playground") + f"?provider=kie&model=recraft-upscale&remix={upscale.uuid}"
    for _ in range(2):
        page = client_in.get(url).content.decode()
    copy = InputImage.objects.get(owner=user)  # one copy, however often opened
    assert copy.sha256 == theirs.sha256 and copy.team == team
    assert f'name="image__ref" value="{copy.uuid}"' in page
    client_in.post(reverse("playground") + "?provider=kie&model=recraft-upscale",
                   {"input": str(copy.uuid), "image__ref": str(copy.uuid), "origin": _origin_of(page)})
    remix = Generation.objects.get(owner=user)
    assert remix.params["image"] == str(copy.uuid) and remix.remix_of == upscale
    # Bob's own remix picks his own image, no copy.
    page = login(bob).get(url).content.decode()
    assert f'name="image__ref" value="{theirs.uuid}"' in page
    assert InputImage.objects.filter(owner=bob).count() == 1
