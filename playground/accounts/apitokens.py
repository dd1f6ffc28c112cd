"""Who a request to the OpenAI-compatible API is: its bearer token.

`authenticate(request)` returns the ApiToken or raises TokenRejected with
an OpenAI-style message and code (HTTP 401). A token works only while it is
neither revoked nor expired and its user is still an active member of the
token's team."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .models import ApiToken, Membership


class TokenRejected(Exception):
    status = 401

    def __init__(self, message: str, code: str = "invalid_api_key"):
        super().__init__(message)
        self.message = message
        self.code = code


# last_used_at is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


def bearer(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


def authenticate(request) -> ApiToken:
    secret = bearer(request)
    if not secret:
        raise TokenRejected(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_TOKEN'; "
            "make one on your account page.", "missing_api_key")
    token = ApiToken.find(secret)
    if token is None:
        raise TokenRejected("Incorrect API key provided.")
    if token.state == "revoked":
        raise TokenRejected(f"The API token '{token.name}' (...{token.last4}) was revoked.", "revoked_api_key")
    if token.state == "expired":
        raise TokenRejected(f"The API token '{token.name}' (...{token.last4}) has expired.", "expired_api_key")
    if not token.user.is_active or not Membership.objects.filter(team=token.team, user=token.user).exists():
        raise TokenRejected(f"The API token '{token.name}' (...{token.last4}) belongs to someone who is no "
                            "longer in its team.", "invalid_api_key")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def model_choices() -> list[tuple[str, str]]:
    """Every configured provider model a token may be limited to, as its
    "provider/model" key (the playground URLs' keys) and a label."""
    from playground.providers import registry

    return [(f"{key}/{model}", f"{cls.label}: {spec.label}")
            for key, cls in registry.adapter_classes().items() for model, spec in cls.models.items()]


def unknown_models(keys) -> list[str]:
    """The keys in keys that name no configured provider model."""
    known = {key for key, _ in model_choices()}
    return [k for k in keys if k not in known]
