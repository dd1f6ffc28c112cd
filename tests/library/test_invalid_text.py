"""Text that is not valid Unicode (RELIABILITY 11) in the library: saving a
prompt, a new version, or taking a playground prompt to the library is
refused with a 400 naming the field, and nothing is saved."""

from __future__ import annotations

from django.urls import reverse

from playground.library.models import Prompt, PromptVersion
from playground.library.views import DRAFTS

from tests import factories
from tests.bad_text import SURROGATE, multipart
from tests.library import util

ERROR = "is not valid Unicode: it has a lone surrogate (U+D800) at character 2."


def test_saving_a_prompt_with_a_lone_surrogate_is_refused_and_saves_nothing(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse in fog")
    body, ctype = multipart({"step": "save", "from": str(gen.uuid), "title": "Lighthouse", "text": SURROGATE,
                             "tags": "sea", "notes": "", "visibility": "team"})
    r = client_in.generic("POST", reverse("library_new"), body, content_type=ctype)
    assert r.status_code == 400
    assert f"The form field \u201ctext\u201d {ERROR}" in r.content.decode()
    assert Prompt.objects.count() == 0 and PromptVersion.objects.count() == 0


def test_a_title_or_tag_with_one_is_refused_naming_its_field(client_in, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse in fog")
    body, ctype = multipart({"step": "save", "from": str(gen.uuid), "title": "Light\ud800house",
                             "text": "a lighthouse in fog", "tags": "sea", "visibility": "team"})
    r = client_in.generic("POST", reverse("library_new"), body, content_type=ctype)
    assert r.status_code == 400 and "\u201ctitle\u201d" in r.content.decode()
    assert "(U+D800) at character 6." in r.content.decode()
    assert Prompt.objects.count() == 0


def test_a_new_version_with_one_is_refused(client_in, team, user):
    prompt = util.prompt(team, user)
    body, ctype = multipart({"text": SURROGATE, "tags": "", "notes": "", "message": "shorter"})
    r = client_in.generic("POST", reverse("prompt_edit", args=[prompt.uuid]), body, content_type=ctype)
    assert r.status_code == 400 and ERROR in r.content.decode()
    assert prompt.versions.count() == 1


def test_taking_a_playground_prompt_with_one_to_the_library_is_refused(client_in):
    body, ctype = multipart({"provider": "kie", "prompt": SURROGATE})
    r = client_in.generic("POST", reverse("library_new") + "?provider=kie&model=seedream-v4",
                          body, content_type=ctype)
    assert r.status_code == 400 and ERROR in r.content.decode()
    assert not client_in.session.get(DRAFTS)  # no draft kept
