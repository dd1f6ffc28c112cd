"""The one rule for text from outside (RELIABILITY 11): text that is not
valid Unicode is refused at every entry, with a clear message, before
anything is made of it.

A Python str can hold what no Unicode text can: a lone surrogate (U+D800 to
U+DFFF). Such a string cannot be encoded: not into a provider's request,
not into a response, not into PostgreSQL (UnicodeEncodeError). It comes
from JSON's escape "\\ud800" (json.loads accepts it, and the raw bytes
ED A0 80 in a JSON body too), and from a multipart form that names its own
charset (Django decodes the parts with it: "charset=utf-7" turns "+2AA-"
into U+D800). A urlencoded body must be UTF-8 (Django answers 400
otherwise) and invalid UTF-8 bytes become U+FFFD: valid text.

NUL (U+0000) is valid Unicode, but no text column of PostgreSQL can hold
it, and Django's form fields refuse it already: refused here too, in the
same words at every entry.

`problem` is the rule; `first_problem` finds the first bad text in a
JSON-like value (the API's fields, a job's params); `ValidTextForm` applies
the rule to every field of a Django form, `validate` to one form field
(both in the words of `field_error`); `shown` makes a bad text printable
for a message.
"""

from __future__ import annotations

from dataclasses import dataclass

NUL = "\x00"


def problem(value: str) -> str | None:
    """What makes this text unusable, as the end of a sentence ("is not
    valid Unicode: ..."), or None when it is fine."""
    # isascii() is O(1) for CPython strings: the common case costs nothing.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return (f"is not valid Unicode: it has a lone surrogate (U+{ord(value[e.start]):04X}) at character "
                    f"{e.start + 1}")
    at = value.find(NUL)
    if at >= 0:
        return f"has a NUL character (U+0000) at character {at + 1}, which is not allowed"
    return None


def shown(value: str) -> str:
    """value with what cannot be shown written as escapes (\\ud800, \\x00)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace(NUL, "\\x00")


@dataclass(frozen=True)
class Found:
    """Where a JSON-like value holds bad text: the path of keys and indexes
    to it, and what is wrong. is_key: the bad text is the path's last key
    itself (a name, not a value)."""

    path: tuple
    problem: str
    is_key: bool = False

    def where(self) -> str:
        """The path as a name ("provider_params.style", "image[0]"),
        printable even when a key is the bad text."""
        out = ""
        for part in self.path:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += ("." if out else "") + shown(str(part))
        return out


def first_problem(value, path: tuple = ()) -> Found | None:
    """The first bad text in a JSON-like value (a str; a dict's keys and
    values; a list's or tuple's items), depth first, or None."""
    if isinstance(value, str):
        wrong = problem(value)
        return Found(path, wrong) if wrong else None
    if isinstance(value, dict):
        for key, item in value.items():
            wrong = problem(key) if isinstance(key, str) else None
            if wrong:
                return Found(path + (key,), wrong, is_key=True)
            found = first_problem(item, path + (key,))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = first_problem(item, path + (i,))
            if found:
                return found
    return None


def field_error(value) -> str | None:
    """A form field's error for a submitted value that breaks the rule (a
    text, or an upload by its file name), or None."""
    if isinstance(value, str):
        wrong = problem(value)
        return f"This text {wrong}." if wrong else None
    name = getattr(value, "name", None)
    wrong = problem(name) if isinstance(name, str) else None
    return f"The file name {wrong}." if wrong else None


def validate(value) -> None:
    """The rule as a Django validator, for a text field used on its own
    (outside a ValidTextForm, which escapes the value before any field
    reads it): raises ValidationError. It says what Django's NUL validator
    says, in the rule's words: a field with this one needs no other."""
    error = field_error(value) if isinstance(value, str) else None
    if error:
        from django.core.exceptions import ValidationError

        raise ValidationError(error, code="invalid_text")


class ValidTextForm:
    """Mixin for a Django form (before forms.Form in the bases). A value
    submitted for any of its fields (text, a choice, an upload's file name)
    that breaks the rule is that field's error, in place of any other
    ("This text is not valid Unicode: ..."). Nothing reads the value
    itself: the fields, the form's clean() and the page showing the form
    again get it with escapes (shown(): a\\ud800b), an upload is left out,
    so nothing is made of it and the page can still be written."""

    def full_clean(self):
        bad = self._take_bad_text() if self.is_bound else {}
        super().full_clean()
        if bad:
            from django.core.exceptions import ValidationError

            for name, message in bad.items():
                self._errors.pop(name, None)
                self.add_error(name, ValidationError(message, code="invalid_text"))

    def _take_bad_text(self) -> dict[str, str]:
        """{field name: message} for each field whose submitted value breaks
        the rule; self.data and self.files become copies with those values
        escaped or left out."""
        bad = {}
        for name, field in self.fields.items():
            value = field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            errors = [field_error(item) for item in (value if isinstance(value, (list, tuple)) else [value])]
            error = next((e for e in errors if e), None)
            if error:
                bad[name] = error
        if not bad:
            return bad
        keys = {self.add_prefix(name) for name in bad}
        data = self.data.copy()  # a QueryDict's copy is mutable
        for key in keys & set(data):
            if hasattr(data, "setlist"):
                data.setlist(key, [_escaped(v) for v in data.getlist(key)])
            else:
                data[key] = _escaped(data[key])
        self.data = data
        if any(key in self.files for key in keys):
            self.files = self.files.copy()
            for key in keys & set(self.files):
                del self.files[key]
        return bad


def _escaped(value):
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, (list, tuple)):
        return [_escaped(v) for v in value]
    return value
