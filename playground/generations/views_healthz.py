"""healthz: "ok" while the process answers HTTP (no login; the view reads
nothing)."""

from django.http import HttpResponse


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
