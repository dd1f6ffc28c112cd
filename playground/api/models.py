"""The OpenAI-compatible API's own rows: team model aliases, one request's
jobs (so that a request that timed out can be fetched later), and the
per-token rate-limit window."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from playground.accounts.models import ApiToken, Team
from playground.providers import registry
from playground.generations.models import Generation

ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def model_id(provider: str, model: str) -> str:
    """The API's name of a configured model: provider/model, as in the playground's URLs."""
    return f"{provider}/{model}"


class ModelAlias(models.Model):
    """A name a team owner gives a model ("fast" -> kie/seedream-v4): API
    callers in the team may use it as `model`."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="model_aliases")
    name = models.CharField(max_length=64, help_text="Letters, digits and . _ : - (no /), at most 64.")
    target = models.CharField(max_length=101, help_text="provider/model, e.g. kie/seedream-v4.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_alias_name_per_team")]

    def __str__(self):
        return f"{self.name} -> {self.target}"

    def clean(self):
        if not ALIAS_RE.fullmatch(self.name or ""):
            raise ValidationError({"name": "Use letters, digits and . _ : - (at most 64, no /)."})
        if self.target not in configured():
            raise ValidationError({"target": "Not a configured model."})


class ApiRequest(models.Model):
    """One API call's generations (n of them, or one that makes n images),
    found again by any of their ids: GET /v1/images/jobs/<uuid>."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    token = models.ForeignKey(ApiToken, models.SET_NULL, null=True, related_name="+")
    team = models.ForeignKey(Team, models.CASCADE, related_name="+")
    generations = models.ManyToManyField(Generation, related_name="api_requests")
    response_format = models.CharField(max_length=8, default="url")
    created_at = models.DateTimeField(default=timezone.now)


class RateWindow(models.Model):
    """A token's requests in the current minute (a fixed window), counted by
    conditional updates so that every web process shares it."""

    token = models.OneToOneField(ApiToken, models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)


def configured() -> dict[str, tuple[str, str]]:
    """provider/model -> (provider, model) of every configured model."""
    return {model_id(key, m): (key, m) for key, cls in registry.adapter_classes().items() for m in cls.models}
