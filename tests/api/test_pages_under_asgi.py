"""The pages work as before with the web process under ASGI (uvicorn, as
`manage.py serve` runs it): sessions, CSRF, CSP headers, static files."""

import re

from django.test import Client
import httpx


def test_pages_forms_and_static_files_under_asgi(asgi_server, sandbox, user, team):
    django_client = Client()
    django_client.force_login(user)
    c = httpx.Client(base_url=asgi_server, cookies={"sessionid": django_client.cookies["sessionid"].value})
    for path in ("/", "/generations/?scope=team", "/credits/", "/team/", "/library/", "/compare/",
                 "/team/api/aliases/"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"], path
    static = c.get("/static/app.css")
    assert static.status_code == 200 and static.headers["content-type"].startswith("text/css")
    # A form POST with its CSRF token (the session's), then the job is queued.
    page = c.get("/?provider=kwiki&model=generate").text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    r = c.post("/?provider=kwiki&model=generate", data={
        "csrfmiddlewaretoken": csrf, "provider": "kwiki", "model": "generate", "prompt": "a lighthouse at noon",
        "quality": "fast", "style": "realistic"}, headers={"Referer": asgi_server + "/"})
    assert r.status_code == 302
    assert team.generations.get().prompt == "a lighthouse at noon"
    # Without the token, CSRF still refuses it (only the API is exempt).
    assert c.post("/?provider=kwiki&model=generate", data={"prompt": "x"}).status_code == 403
