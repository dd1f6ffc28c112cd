"""whitenoise's middleware, async-capable: under ASGI a request outside
STATIC_URL goes straight on (whitenoise would only pass it on, from a thread
held until the view returns); a static file is served by whitenoise."""

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFiles:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            self.whitenoise = WhiteNoiseMiddleware(async_to_sync(get_response))
            self.serve = sync_to_async(self.whitenoise, thread_sensitive=True)
        else:
            self.whitenoise = WhiteNoiseMiddleware(get_response)
        self.prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        if not self.is_async:
            return self.whitenoise(request)
        return self.acall(request)

    async def acall(self, request):
        if request.path_info.startswith(self.prefix):
            return await self.serve(request)
        return await self.get_response(request)
