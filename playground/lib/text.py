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
JSON-like value (the API's fields, a job's params); `RefuseInvalidText`,
a middleware, applies it to every page's query string, form fields and
uploads' file names (the API checks its own bodies, in its own error
shape); `shown` makes a bad text printable for a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

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


def request_problem(request) -> str | None:
    """What is wrong with the first bad text in a request's query string,
    form fields (their names too) or uploads' file names, as a sentence
    naming the field; or None."""
    parts = [("query string", request.GET)]
    if request.method == "POST" and request.content_type in (
            "multipart/form-data", "application/x-www-form-urlencoded"):
        parts += [("form", request.POST), ("file", request.FILES)]
    for what, data in parts:
        for key, values in data.lists():
            wrong = problem(key)
            if wrong:
                return f"A {what} field name {wrong}."
            for value in values:
                value = value if what != "file" else (value.name or "")
                wrong = problem(value)
                if wrong:
                    return f"The {what} field \u201c{shown(key)}\u201d {wrong}."
    return None


def checks_own_text(view):
    """Marks a view that applies the rule itself, answering in its own
    shape (the /v1 API's JSON errors): RefuseInvalidText lets it through."""
    view.checks_own_text = True
    return view


class RefuseInvalidText:
    """Middleware for every page: a request carrying text that breaks the
    rule is answered 400, saying which field and what, before the view, a
    form or the login check reads it. A browser never sends such text (only
    a crafted request can: a multipart body in charset=utf-7, say), so
    refusing the whole request loses nothing a person typed."""

    sync_capable = async_capable = True  # holds no thread under ASGI (Django's documented flags)

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "checks_own_text", False):
            return None
        wrong = request_problem(request)
        if wrong is None:
            return None
        from django.shortcuts import render

        return render(request, "400.html", {"problem": wrong}, status=400)
