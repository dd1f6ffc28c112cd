"""An htmx fragment is a named part of its page, rendered from the page's own
context: it shows exactly what that part of the full page shows."""

import re

from django.urls import reverse

from tests import factories
from tests.helpers import run_tasks

URL = reverse("playground") + "?provider=kie&model=seedream-v4"
HTMX = {"HTTP_HX_REQUEST": "true"}
BAD = {"prompt": "", "image_size": "square", "image_resolution": "2K", "num_inference_steps": "99",
       "submit_token": "8f6f3c1e-8a55-4c56-9a52-2f1d7c0f6b11"}


def part(html: str, start: str, end: str) -> str:
    """The element that begins with `start`, up to the first `end` after it,
    with the per-render CSRF token blanked."""
    i = html.index(start)
    j = html.index(end, i) + len(end)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"', html[i:j]).strip()


FORM = ('<section class="card model-form" id="model-form">', "</section>")


def test_the_form_fragment_is_the_form_of_the_full_page(client_in, sandbox):
    full = client_in.get(URL).content.decode()
    fragment = client_in.get(URL + "&fragment=form", **HTMX).content.decode()
    token = re.search(r'id="submit-token" value="([^"]+)"', full).group(1)
    assert part(fragment, *FORM) == part(full, *FORM).replace(token, re.search(
        r'id="submit-token" value="([^"]+)"', fragment).group(1))
    assert "Jobs" not in fragment and "<html" not in fragment  # the part only


def test_a_form_sent_back_with_errors_is_the_same_with_and_without_htmx(client_in, sandbox):
    plain = client_in.post(URL, BAD).content.decode()
    fragment = client_in.post(URL, BAD, **HTMX).content.decode()
    assert part(fragment, *FORM) == part(plain, *FORM)
    assert "Ensure this value is less than or equal to 50." in fragment
    assert "Using the local sandbox" in fragment  # where requests go, as on the page
    assert BAD["submit_token"] in fragment  # no job was made with this token: it stays


def test_a_polled_card_is_the_card_of_the_detail_page(client_in, sandbox, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a windmill on a hill")
    run_tasks(until=gen)
    card = ('<article class="job', "</article>")
    detail = client_in.get(gen.get_absolute_url()).content.decode()
    fragment = client_in.get(gen.get_absolute_url(), HTTP_HX_REQUEST="true",
                             HTTP_HX_CURRENT_URL="http://testserver" + gen.get_absolute_url()).content.decode()
    assert part(fragment, *card) == part(detail, *card)
    assert "Copy as code" in detail and "Copy as code" not in fragment
