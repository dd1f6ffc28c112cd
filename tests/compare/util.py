"""Helpers of the compare tests: the new-comparison form posted, the newest
comparison, and reading a page's elements as HTML (Django's parser, as
assertInHTML reads them: attribute order and whitespace do not matter)."""

from django.test.html import Element, parse_html
from django.urls import reverse

from playground.compare.models import Comparison

THREE = ["kie:seedream-v4", "kvid:text-to-image", "kawai:generations"]


def post_new(client, **data):
    form = {"prompt": "a calm lake at dawn", "models": THREE, "visibility": "team", "action": "run"}
    form.update(data)
    return client.post(reverse("compare_new"), form)


def newest() -> Comparison:
    return Comparison.objects.order_by("-id").first()


def elements(html: str, tag: str | None = None, **attrs) -> list[Element]:
    """The elements of a page (of this tag) that have these attributes, in
    page order; an attribute's name is written with _ for - (data_testid)."""
    want = {k.replace("_", "-"): v for k, v in attrs.items()}
    found = []

    def walk(node):
        if not isinstance(node, Element):
            return
        have = dict(node.attributes)
        if (tag is None or node.name == tag) and all(have.get(k) == v for k, v in want.items()):
            found.append(node)
        for child in node.children:
            walk(child)

    walk(parse_html(html))
    return found


def text(element: Element) -> str:
    """An element's text, its children's included, whitespace collapsed."""
    parts = [c if isinstance(c, str) else text(c) for c in element.children]
    return " ".join(" ".join(parts).split())


def texts(html: str, testid: str) -> list[str]:
    return [text(e) for e in elements(html, data_testid=testid)]


def values(html: str, name: str) -> list[str]:
    """The values of the inputs called name, in page order."""
    return [dict(e.attributes)["value"] for e in elements(html, "input", name=name)]
