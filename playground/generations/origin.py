"""Where a new job comes from, carried by the playground form.

Two ways into a prefilled form:
- ?remix=GENERATION_UUID: the same parameters again (the new job records
  remix_of);
- ?prefill=KEY: values another part of the app (the prompt library's "Run")
  put in the session with `stash_prefill`: parameters for one model, a note
  shown above the form, the fields that were dropped, and the prompt version
  the job will record (prompt_version_uuid).

The form carries the origin back in one signed hidden field, so a POST
cannot claim someone else's generation or version by editing the page."""

from __future__ import annotations

import secrets
import uuid as uuid_mod
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

SESSION_KEY = "playground_prefill"
KEEP = 20  # prefills kept per session (older ones are dropped)
SALT = "playground.origin"


def stash_prefill(request, provider: str, model: str, params: dict, *, version_uuid=None,
                  note: str = "", dropped=()) -> str:
    """Keep a prefill in the session and return the playground URL that opens it."""
    key = secrets.token_urlsafe(8)
    store = dict(request.session.get(SESSION_KEY) or {})
    store[key] = {
        "provider": provider, "model": model, "params": params,
        "version": str(version_uuid) if version_uuid else "", "note": note[:500], "dropped": list(dropped)[:50],
    }
    while len(store) > KEEP:
        store.pop(next(iter(store)))
    request.session[SESSION_KEY] = store
    return f"{reverse('playground')}?{urlencode({'provider': provider, 'model': model, 'prefill': key})}"


def prefill(request, provider: str, model: str) -> dict | None:
    """The prefill named by ?prefill=KEY, when it was made for this model."""
    key = request.GET.get("prefill")
    if not key:
        return None
    item = (request.session.get(SESSION_KEY) or {}).get(key)
    if not item or item.get("provider") != provider or item.get("model") != model:
        return None
    return item


def sign(*, remix=None, version=None) -> str:
    """The hidden field's value for a form opened from a remix or a version."""
    data = {}
    if remix:
        data["remix"] = str(remix)
    if version:
        data["version"] = str(version)
    return signing.dumps(data, salt=SALT) if data else ""


def read(value: str) -> dict:
    """{"remix": UUID, "version": UUID} from a signed hidden field (each
    optional); anything tampered with or malformed reads as no origin."""
    if not value:
        return {}
    try:
        data = signing.loads(value, salt=SALT, max_age=7 * 24 * 3600)
    except signing.BadSignature:
        return {}
    out = {}
    for k in ("remix", "version"):
        try:
            if data.get(k):
                out[k] = uuid_mod.UUID(data[k])
        except (ValueError, TypeError, AttributeError):
            pass
    return out
