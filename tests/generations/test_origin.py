"""Where a job comes from: a remix records the generation it remixed, a
prefill (the prompt library's Run) records its version, the signed origin
field cannot be forged, and new jobs take the owner's visibility default."""

import re
import uuid

from django.test import RequestFactory
from django.urls import reverse

from playground.accounts.models import Membership
from playground.generations import origin
from playground.generations.models import Generation

from tests import factories

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
FIELDS = {"image_size": "square", "image_resolution": "1K", "num_inference_steps": "20"}


def _origin_of(html):
    m = re.search(r'name="origin" value="([^"]+)"', html)
    return m.group(1) if m else ""


def test_a_remix_opens_the_same_parameters_and_the_new_job_records_what_it_remixed(client_in, sandbox, user, team):
    first = factories.job(team, user, "kie", "seedream-v4", prompt="a red kite over dunes", num_inference_steps=12)
    page = client_in.get(URL + f"&remix={first.uuid}").content.decode()
    assert "a red kite over dunes" in page
    client_in.post(URL, {"prompt": "a red kite over dunes, at dusk", **FIELDS, "origin": _origin_of(page)})
    new = Generation.objects.exclude(pk=first.pk).get()
    assert new.remix_of == first
    assert list(first.remixes.all()) == [new]


def test_a_forged_or_foreign_origin_records_nothing(client_in, sandbox, user, team, other_user, other_team):
    foreign = factories.job(other_team, other_user, "kie", "seedream-v4", prompt="someone else's")
    forged = origin.sign(remix=foreign.uuid)  # validly signed, but not visible to alice
    client_in.post(URL, {"prompt": "one", **FIELDS, "origin": forged})
    client_in.post(URL, {"prompt": "two", **FIELDS, "origin": forged[:-3] + "abc"})
    mine = Generation.objects.filter(owner=user)
    assert mine.count() == 2
    assert all(g.remix_of is None and g.prompt_version_uuid is None for g in mine)


def test_a_prefill_fills_the_form_shows_its_note_and_the_job_records_the_version(client_in, sandbox, user):
    version = uuid.uuid4()
    request = RequestFactory().get("/")
    request.session = client_in.session
    url = origin.stash_prefill(request, "kie", "seedream-v4", {"prompt": "a lighthouse in fog", "seed": 7},
                               version_uuid=version, note="Running version 2 of Lighthouse.", dropped=["style"])
    request.session.save()
    page = client_in.get(url).content.decode()
    assert "a lighthouse in fog" in page and 'value="7"' in page
    assert "Running version 2 of Lighthouse." in page and "left out: style" in page
    client_in.post(URL, {"prompt": "a lighthouse in fog", **FIELDS, "origin": _origin_of(page)})
    assert Generation.objects.get().prompt_version_uuid == version
    # A prefill made for another model does not fill this one.
    other = client_in.get(reverse("playground") + "?provider=kie&model=flux-kontext&prefill=" + url.rsplit("=", 1)[1])
    assert "Running version 2" not in other.content.decode()


def test_new_jobs_are_shared_unless_the_owner_prefers_private(sandbox, user, team):
    assert factories.job(team, user, prompt="a").visibility == Generation.SHARED
    Membership.objects.filter(team=team, user=user).update(share_by_default=False)
    assert factories.job(team, user, prompt="b").visibility == Generation.PRIVATE
