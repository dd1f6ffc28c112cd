"""Text that is not valid Unicode (RELIABILITY 11) in the library: saving a
prompt, or a new version, shows it as the field's error and saves nothing."""

from __future__ import annotations

from django.urls import reverse

from playground.library.models import Prompt, PromptVersion

from tests import factories
from tests.bad_text import SURROGATE, multipart
from tests.library import util

ERROR = "This text is not valid Unicode: it has a lone surrogate (U+D800) at character 2."


def test_saving_a_prompt_with_a_lone_surrogate_shows_the_texts_error_and_saves_nothing(client_in, sandbox, team,
                                                                                         user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse in fog")
    body, ctype = multipart({"step": "save", "from": str(gen.uuid), "title": "Lighthouse", "text": SURROGATE,
                             "tags": "sea", "notes": "", "visibility": "team"})
    r = client_in.generic("POST", reverse("library_new"), body, content_type=ctype)
    assert r.status_code == 400
    html = r.content.decode()
    assert ERROR in html and "a\\ud800b</textarea>" in html
    assert Prompt.objects.count() == 0 and PromptVersion.objects.count() == 0


def test_a_title_or_tag_with_one_is_refused_on_its_field(client_in, sandbox, team, user):
    gen = factories.job(team, user, "kie", "seedream-v4", prompt="a lighthouse in fog")
    body, ctype = multipart({"step": "save", "from": str(gen.uuid), "title": "Light\ud800house",
                             "text": "a lighthouse in fog", "tags": "sea, f\udc00og", "visibility": "team"})
    r = client_in.generic("POST", reverse("library_new"), body, content_type=ctype)
    html = r.content.decode()
    assert r.status_code == 400 and "(U+D800) at character 6." in html and "(U+DC00) at character 7." in html
    assert Prompt.objects.count() == 0


def test_a_new_version_with_one_is_refused(client_in, sandbox, team, user):
    prompt = util.prompt(team, user)
    body, ctype = multipart({"text": SURROGATE, "tags": "", "notes": "", "message": "shorter"})
    r = client_in.generic("POST", reverse("prompt_edit", args=[prompt.uuid]), body, content_type=ctype)
    assert r.status_code == 400 and ERROR in r.content.decode()
    assert prompt.versions.count() == 1
