"""A result saved without its thumbnail (by an earlier version, which left
it to a task while other jobs' steps waited: generations/thumbnails.py) shows as its image in the gallery and on
its page, on a laptop and a phone; once the thumbnail is made, the gallery
shows the thumbnail."""

import pytest
from playwright.sync_api import expect

from playground.generations import thumbnails
from playground.generations.models import GenerationImage

from tests.browser.helpers import log_in, shot
from tests.generations.test_gallery import finished

pytestmark = pytest.mark.browser


def loaded_width(img) -> int:
    return img.evaluate("el => el.complete ? el.naturalWidth : 0")


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_a_result_waiting_for_its_thumbnail_shows_its_image_then_the_thumbnail(page, app, team, user, viewport):
    gen = finished(team, user, "a tin robot on a shelf")
    GenerationImage.objects.filter(generation=gen).update(thumbnail="")  # as an earlier version stored it in a batch
    page.set_viewport_size(viewport)
    log_in(page)

    for url, selector in (("/generations/", "img[src$='/thumb']"), (gen.get_absolute_url(), "img.result-img")):
        page.goto(url)
        img = page.locator(selector).first
        expect(img).to_be_visible()
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
        assert loaded_width(img) == 32  # the image itself
    shot(page, f"pending-thumbnail-{viewport['width']}")

    thumbnails.make(gen.pk)
    assert GenerationImage.objects.get(generation=gen).thumbnail.name.endswith("-thumb.jpg")
    page.goto("/generations/")  # not cached: the gallery now gets the thumbnail
    img = page.locator("img[src$='/thumb']").first
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    resp = page.request.get(img.get_attribute("src"))
    assert resp.headers["content-type"] == "image/jpeg"
