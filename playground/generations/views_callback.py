"""The provider callback receiver (webhook): a provider says a job ended,
and the job asks the provider itself."""

import json

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .pipeline import callbacks
from .models import Generation


@csrf_exempt
@require_POST
def provider_callback(request, provider, token):
    """A provider says a job ended. Unsigned, so only a hint: the token in the
    URL finds the job, and the job asks the provider itself (RELIABILITY 5).
    The common case, a running job, costs one conditional update."""
    if callbacks.nudge_running(provider, token):
        return JsonResponse({"ok": True})
    gen = Generation.objects.filter(provider=provider, callback_token=token).first()
    if gen is None:
        raise Http404("Unknown callback")
    # The body only matters for a job whose submit answer was lost: the job
    # id it names is a claim, confirmed by a status call before anything changes.
    body = None
    if len(request.body) <= CALLBACK_MAX_BYTES:
        try:
            body = json.loads(request.body)
        except ValueError:
            pass
    if gen.status != Generation.RUNNING:  # a running one was just refused (a replay, or during a backoff)
        callbacks.nudge(gen, body)
    return JsonResponse({"ok": True})


CALLBACK_MAX_BYTES = 64 * 1024
