"""The one rule for text from outside (lib/text.py): a lone surrogate or a
NUL is found, where it is said, and shown with escapes."""

from __future__ import annotations

from django import forms

from playground.lib import text


def test_the_rule():
    assert text.problem("a paper boat, \u00e9t\u00e9, \U0001F6F6") is None
    assert text.problem("a\ud800b") == "is not valid Unicode: it has a lone surrogate (U+D800) at character 2"
    assert text.problem("\U0001F6F6\udfff") == "is not valid Unicode: it has a lone surrogate (U+DFFF) at character 2"
    assert text.problem("ab\x00") == "has a NUL character (U+0000) at character 3, which is not allowed"
    assert text.problem("\u00e9\x00") is not None  # not ASCII, valid, with a NUL


def test_first_problem_names_the_path_keys_included():
    assert text.first_problem({"prompt": "ok", "n": 1, "x": [None, 2.5]}) is None
    found = text.first_problem({"prompt": "ok", "provider_params": {"style": ["fine", "a\ud800"]}})
    assert found.where() == "provider_params.style[1]" and not found.is_key
    key = text.first_problem({"ok": 1, "a\udc00": 2})
    assert key.is_key and key.where() == "a\\udc00"
    assert text.shown("a\ud800b\x00") == "a\\ud800b\\x00"


class Sample(text.ValidTextForm, forms.Form):
    title = forms.CharField(max_length=20)
    kind = forms.ChoiceField(choices=[("a", "A"), ("b", "B")])
    upload = forms.FileField(required=False)


def test_the_form_mixin_puts_the_error_on_the_field_and_nothing_reads_the_value():
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = Sample({"title": "a\ud800b", "kind": "b\x00"}, {"upload": SimpleUploadedFile("x\ud800.png", b"png")})
    assert not form.is_valid()
    assert form.errors["title"] == ["This text is not valid Unicode: it has a lone surrogate (U+D800) at character 2."]
    # One error, the rule's, in place of Django's own (an invalid choice, "Null characters are not allowed.").
    assert form.errors["kind"] == ["This text has a NUL character (U+0000) at character 2, which is not allowed."]
    assert form.errors["upload"] == [
        "The file name is not valid Unicode: it has a lone surrogate (U+D800) at character 2."]
    # The page that shows the form again can be written (the value with escapes).
    html = form.as_div()
    html.encode("utf-8")
    assert 'value="a\\ud800b"' in html
    ok = Sample({"title": "a lighthouse", "kind": "a"})
    assert ok.is_valid(), ok.errors
