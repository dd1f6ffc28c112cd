"""The web process under an ASGI server (`manage.py serve`: gunicorn with
uvicorn's worker). Pages are Django's sync views as before; the API's image
endpoints are coroutines that wait for the task workers without a thread.

Django gives every ASGI request a thread of its own for its sync parts
(middleware, signals, ORM calls), kept until the response is sent, and a
sync-only middleware blocks that thread until the view returns: a request
that waits two minutes would hold one the whole time. The waiting API
requests share API_THREADS single-thread executors (asgiref's
ThreadSensitiveContext with an executor; each request stays on one of them,
so its database connection stays on one thread), picked by fewest requests
in flight, when every middleware is async-capable (waiting_holds_no_thread);
while one is not, each waiting request holds a thread of its own, as Django
runs any request. Waiting itself is asyncio.sleep: 1,000 requests waiting in one
process hold 1,000 coroutines and API_THREADS threads.

Every other HTTP request (the pages) runs its sync parts on one of
WEB_THREADS single-thread executors, picked the same way, instead of a
thread made for the request: a thread that lives on keeps its database
connection for CONN_MAX_AGE (health-checked at each request's start, closed
at its end when too old or broken, as under WSGI), where a thread per
request opened a new connection for every page and every job-card poll.

Every HTTP request runs in a context of its own, empty (no context variable
of an earlier request). A request task inherits the context its connection's
read callback runs in, and that callback is not always a clean one: when a
request's body is over uvicorn's flow-control limit (64 KiB) uvicorn pauses
the socket's reading, and the request's own receive() resumes it, so asyncio
registers the read callback again with a copy of that request's context.
The next request on the keep-alive connection then started inside the
previous one's ThreadSensitiveContext, long exited: Django's handler kept it
(it sets a context only where none is), and its first sync call raised
"ThreadSensitiveContext has exited" (a 500; issue 23). After a page it was
quieter: the next requests shared a thread made under that old context,
which no request's end shut down.
"""

import asyncio
import contextvars
import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django_app = get_asgi_application()

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from asgiref.sync import ThreadSensitiveContext  # noqa: E402
from django.conf import settings  # noqa: E402

# Static files (whitenoise) and stored images are file responses with a sync
# iterator: Django reads them in a thread and says so once per file. Their
# size is capped (static files; images up to DOWNLOAD_MAX_BYTES).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

# The endpoints that wait (their database calls go to the shared executors).
WAITING_PATHS = ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations")


class _Pool:
    def __init__(self, size: int):
        self.executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"api-{i}") for i in range(size)]
        self.in_flight = [0] * size

    def take(self) -> int:
        i = min(range(len(self.executors)), key=self.in_flight.__getitem__)
        self.in_flight[i] += 1
        return i

    def give_back(self, i: int) -> None:
        self.in_flight[i] -= 1

    async def serve(self, scope, receive, send):
        """The request, its sync parts on the executor with fewest requests
        in flight (the outermost context sets it: Django's handler keeps it)."""
        i = self.take()
        try:
            async with ThreadSensitiveContext(executor=self.executors[i]):
                await django_app(scope, receive, send)
        finally:
            self.give_back(i)


def waiting_holds_no_thread() -> bool:
    """Whether Django's handler runs the whole middleware chain as async for
    a coroutine view: every middleware says it is async-capable (Django's
    documented flags). Then a waiting request's few sync calls can share the
    API_THREADS executors. One sync-only middleware makes Django run the
    rest of the chain under async_to_sync, blocking its thread until the
    view returns: then each waiting request keeps a thread of its own
    (Django's default), never one of the shared executors."""
    from django.utils.module_loading import import_string

    return all(getattr(import_string(path), "async_capable", False) for path in settings.MIDDLEWARE)


_pool = None
_pages = None
_shared_threads = None


async def application(scope, receive, send):
    if scope["type"] == "http":
        # A fresh, empty context (module docstring); cancelling the request
        # cancels this task with it.
        task = asyncio.get_running_loop().create_task(_serve(scope, receive, send), context=contextvars.Context())
        await task
        return
    await _serve(scope, receive, send)


async def _serve(scope, receive, send):
    global _pool, _pages, _shared_threads
    if _shared_threads is None:
        _shared_threads = waiting_holds_no_thread()
    if _shared_threads and scope["type"] == "http" and scope.get("path", "").rstrip("/") in WAITING_PATHS:
        if _pool is None:  # made in the worker process, after any fork
            _pool = _Pool(max(1, settings.API_THREADS))
        return await _pool.serve(scope, receive, send)
    if scope["type"] == "http":
        if _pages is None:  # made in the worker process, after any fork
            _pages = _Pool(max(1, settings.WEB_THREADS))
        return await _pages.serve(scope, receive, send)
    if scope["type"] == "lifespan":  # uvicorn asks; Django has nothing to do at start or stop
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await django_app(scope, receive, send)
