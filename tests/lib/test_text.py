"""The one rule for text from outside (lib/text.py): a lone surrogate or a
NUL is found, where it is said, and shown with escapes."""

from __future__ import annotations

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
