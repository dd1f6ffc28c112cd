"""Text that is not valid Unicode (RELIABILITY 11) in a comparison's form:
refused with a 400 naming the field; no comparison, no job."""

from __future__ import annotations

from django.urls import reverse

from playground.compare.models import Comparison
from playground.generations.models import Generation

from tests.bad_text import SURROGATE, multipart


def test_a_prompt_with_a_lone_surrogate_is_refused_and_makes_nothing(client_in):
    body, ctype = multipart({"prompt": SURROGATE, "models": ["kie:seedream-v4"], "visibility": "team",
                             "action": "run"})
    r = client_in.generic("POST", reverse("compare_new"), body, content_type=ctype)
    assert r.status_code == 400
    assert ("The form field \u201cprompt\u201d is not valid Unicode: it has a lone surrogate (U+D800) at "
            "character 2.") in r.content.decode()
    assert Comparison.objects.count() == 0 and Generation.objects.count() == 0


def test_a_model_choice_with_one_is_refused_in_the_same_words(client_in):
    body, ctype = multipart({"prompt": "a calm lake", "models": ["kie:seedream-v4\ud800"], "visibility": "team",
                             "action": "run"})
    r = client_in.generic("POST", reverse("compare_new"), body, content_type=ctype)
    assert r.status_code == 400
    assert "\u201cmodels\u201d" in r.content.decode() and "(U+D800) at character 16." in r.content.decode()
    assert Comparison.objects.count() == 0
