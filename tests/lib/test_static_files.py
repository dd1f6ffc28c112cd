"""lib/static.py: whitenoise's middleware, async-capable. Under ASGI a
request outside STATIC_URL goes straight on to the rest of the chain (no
thread held while an async view waits); a static file is served as before."""

import asyncio

from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse
from django.test import RequestFactory

from playground.lib.static import StaticFiles


def test_async_it_passes_other_requests_on_and_serves_static_files():
    seen = []

    async def rest(request):
        seen.append(request.path)
        return HttpResponse("view")

    middleware = StaticFiles(rest)
    assert iscoroutinefunction(middleware)
    factory = RequestFactory()
    page = asyncio.run(middleware(factory.get("/v1/images/generations")))
    assert page.content == b"view" and seen == ["/v1/images/generations"]
    css = asyncio.run(middleware(factory.get("/static/app.css")))
    assert css.status_code == 200 and seen == ["/v1/images/generations"]


def test_sync_it_is_whitenoise(client):
    assert client.get("/static/app.css").status_code == 200
    assert StaticFiles.sync_capable and StaticFiles.async_capable
