"""404 and 500 pages in the app's layout (DEBUG off), and the
Content-Security-Policy header on every page."""

import re
from pathlib import Path

from django.conf import settings as django_settings
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


def directives(header: str) -> dict:
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


def test_the_404_page_has_the_layout_and_navigation(client_in, settings):
    assert settings.DEBUG is False
    r = client_in.get("/no-such-page/")
    page = r.content.decode()
    assert r.status_code == 404
    assert "Page not found" in page and 'href="/static/app.css"' in page
    for name in ("playground", "gallery", "credits", "team"):
        assert f'href="{reverse(name)}"' in page
    assert '<nav class="nav">' in page  # the full top bar for a logged-in user


def test_the_404_page_for_a_visitor_offers_log_in(client, db):
    page = client.get("/no-such-page/").content.decode()
    assert "Page not found" in page and f'href="{reverse("login")}"' in page


def test_the_500_page_renders_without_a_request_context_and_has_navigation(db):
    r = server_error(RequestFactory().get("/"))
    page = r.content.decode()
    assert r.status_code == 500
    assert "Something went wrong" in page and 'href="/static/app.css"' in page
    for name in ("playground", "gallery", "credits", "team"):
        assert f'href="{reverse(name)}"' in page


def test_a_crashing_view_gives_the_500_page(client_in, team, monkeypatch):
    from playground.ledger import views

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "render", boom)
    client_in.raise_request_exception = False
    r = client_in.get(reverse("credits"))
    assert r.status_code == 500 and "Something went wrong" in r.content.decode()


def test_every_page_carries_the_policy(client_in, team):
    for url in (reverse("playground"), reverse("gallery"), reverse("credits"), reverse("team"), "/nope/"):
        r = client_in.get(url)
        assert directives(r["Content-Security-Policy"]) == directives(EXPECTED_CSP), url
    client_in.logout()
    assert directives(client_in.get(reverse("login"))["Content-Security-Policy"]) == directives(EXPECTED_CSP)
    d = directives(EXPECTED_CSP)
    assert "'unsafe-inline'" not in d["script-src"] + d["style-src"] and "'unsafe-eval'" not in d["script-src"]


def test_the_admin_is_not_exempt(admin_client):
    r = admin_client.get("/admin/")
    assert r.status_code == 200 and directives(r["Content-Security-Policy"]) == directives(EXPECTED_CSP)


def test_templates_have_no_inline_script_style_or_handler():
    """Under the policy these would be blocked: behaviour lives in static JS,
    looks in app.css."""
    root = Path(django_settings.BASE_DIR) / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert not re.search(r"\sstyle\s*=", text), path
        assert "<style" not in text and "javascript:" not in text and "hx-on" not in text, path


def test_htmx_is_told_not_to_inject_styles_or_eval(client_in, team):
    page = client_in.get(reverse("playground")).content.decode()
    assert """<meta name="htmx-config" content='{"includeIndicatorStyles": false, "allowEval": false}'>""" in page


def test_an_expired_form_gets_a_page_in_the_layout(db):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    r = c.post(reverse("login"), {"username": "x", "password": "y"})
    page = r.content.decode()
    assert r.status_code == 403 and "This form has expired" in page and 'href="/static/app.css"' in page
