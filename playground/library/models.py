"""The prompt library: prompts a team keeps, each a list of immutable
versions (text, provider/model and its parameters, tags, notes), labels
that point at a version (moved by the prompt's owner, every move kept), and
forks that link to the version they came from.

It sits above generations: a generation records the version it was run from
by uuid (Generation.prompt_version_uuid); this app looks generations up by
it, generations never import this app."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from playground.accounts.models import Team
from playground.accounts.visibility import visible_queryset
from playground.providers import registry

TITLE_MAX = 200
TEXT_MAX = 5000  # the longest prompt any configured model takes (KIE: 5000)
NOTES_MAX = 2000
MESSAGE_MAX = 200
TAG_MAX = 40
TAGS_MAX = 10
LABEL_MAX = 40


class ImmutableVersion(Exception):
    """A saved version is never changed or deleted: an edit makes a new one."""


class Prompt(models.Model):
    PRIVATE, SHARED = "private", "team"
    VISIBILITIES = [(SHARED, "Shared with the team"), (PRIVATE, "Private")]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="prompts")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="prompts")
    title = models.CharField(max_length=TITLE_MAX)
    visibility = models.CharField(max_length=8, choices=VISIBILITIES, default=SHARED)
    # The version this prompt was forked from (its origin), if it is a fork.
    forked_from = models.ForeignKey("PromptVersion", models.SET_NULL, null=True, blank=True, related_name="forks")
    # The newest version (kept here so the list and its search read one row).
    current = models.ForeignKey("PromptVersion", models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = visible_queryset("team", "owner", "visibility").as_manager()  # .visible_to(user, team)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["team", "owner", "-updated_at"])]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("prompt", args=[self.uuid])

    def add_version(self, *, text, provider, model, params, tags=(), notes="", message="", by=None):
        """Save the next version (number n+1) and make it the current one."""
        last = self.versions.order_by("-number").values_list("number", flat=True).first() or 0
        version = PromptVersion.objects.create(
            prompt=self, number=last + 1, text=text, provider=provider, model=model, params=dict(params),
            tags=list(tags), notes=notes, message=message, created_by=by)
        self.current = version
        self.updated_at = version.created_at
        self.save(update_fields=["current", "updated_at"])
        return version


class VersionQuerySet(visible_queryset("prompt__team", "prompt__owner", "prompt__visibility")):
    def update(self, **kwargs):
        raise ImmutableVersion("A prompt version cannot be changed; save a new version.")

    def delete(self):
        raise ImmutableVersion("A prompt version cannot be deleted.")


class PromptVersion(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    prompt = models.ForeignKey(Prompt, models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=60)
    # The model's non-image parameters (the prompt itself is `text`).
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # "|tag|tag|", lowercased: a tag filter that reads the same on SQLite and PostgreSQL.
    tags_text = models.CharField(max_length=(TAG_MAX + 1) * TAGS_MAX + 1, blank=True, editable=False)
    notes = models.TextField(blank=True)
    message = models.CharField(max_length=MESSAGE_MAX, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = VersionQuerySet.as_manager()

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [models.UniqueConstraint(fields=["prompt", "number"], name="one_version_number_per_prompt")]

    def __str__(self):
        return f"{self.prompt.title} v{self.number}"

    def get_absolute_url(self):
        return reverse("prompt_version", args=[self.uuid])

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableVersion("A prompt version cannot be changed; save a new version.")
        self.tags_text = tags_text(self.tags)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersion("A prompt version cannot be deleted.")

    @property
    def provider_label(self) -> str:
        return registry.get_or_removed(self.provider).label

    @property
    def model_label(self) -> str:
        return registry.spec_or_removed(self.provider, self.model).label

    @property
    def is_configured(self) -> bool:
        from playground.providers.removed import is_removed

        return not is_removed(registry.spec_or_removed(self.provider, self.model))


def tags_text(tags) -> str:
    return "|" + "|".join(t.lower() for t in tags) + "|" if tags else ""


class Label(models.Model):
    """A name ("best") pointing at one version of a prompt."""

    prompt = models.ForeignKey(Prompt, models.CASCADE, related_name="labels")
    name = models.CharField(max_length=LABEL_MAX)
    version = models.ForeignKey(PromptVersion, models.CASCADE, related_name="labels")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="one_label_name_per_prompt")]

    def __str__(self):
        return self.name


class LabelMove(models.Model):
    """One setting or moving of a label: the kept history."""

    label = models.ForeignKey(Label, models.CASCADE, related_name="moves")
    from_version = models.ForeignKey(PromptVersion, models.CASCADE, null=True, blank=True, related_name="+")
    to_version = models.ForeignKey(PromptVersion, models.CASCADE, related_name="+")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    moved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-moved_at", "-id"]
