"""A comparison: the same prompt(s) run on several models, as a grid of
rows (one prompt and seed each) x models (one cell = one generation), and
the team's votes on each row."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from playground.accounts.models import Team
from playground.accounts.visibility import visible_queryset
from playground.generations.models import Generation

NAME_MAX = 120
PROMPT_MAX = 4000


class Comparison(models.Model):
    PRIVATE, SHARED = Generation.PRIVATE, Generation.SHARED
    VISIBILITIES = Generation.VISIBILITIES

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="comparisons")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="comparisons")
    name = models.CharField(max_length=NAME_MAX)
    visibility = models.CharField(max_length=8, choices=VISIBILITIES, default=SHARED)
    blind = models.BooleanField(default=False)
    # The shared inputs as given (negative prompt, aspect, input image,
    # models as "provider:model"), for the page and for a re-run.
    inputs = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    rerun_of = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="reruns")
    # One per form render: a double click or a resent POST makes one comparison.
    client_token = models.UUIDField(null=True, blank=True, editable=False)

    objects = visible_queryset("team", "owner", "visibility").as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "client_token"], name="one_comparison_per_form")]

    def __str__(self):
        return self.name


class Row(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    comparison = models.ForeignKey(Comparison, models.CASCADE, related_name="rows")
    index = models.PositiveSmallIntegerField()
    prompt = models.CharField(max_length=PROMPT_MAX)
    seed = models.BigIntegerField()

    objects = visible_queryset("comparison__team", "comparison__owner", "comparison__visibility").as_manager()

    class Meta:
        ordering = ["comparison", "index"]
        constraints = [models.UniqueConstraint(fields=["comparison", "index"], name="one_row_per_index")]


class Cell(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    row = models.ForeignKey(Row, models.CASCADE, related_name="cells")
    column = models.PositiveSmallIntegerField()
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=60)
    generation = models.ForeignKey(Generation, models.SET_NULL, null=True, blank=True, related_name="compare_cells")
    generation_uuid = models.UUIDField(null=True, blank=True)
    params = models.JSONField(default=dict)  # what was sent
    dropped = models.JSONField(default=list)  # shared inputs this model does not take ("not used")
    seed_used = models.BigIntegerField(null=True, blank=True)

    objects = visible_queryset("row__comparison__team", "row__comparison__owner",
                               "row__comparison__visibility").as_manager()

    class Meta:
        ordering = ["row", "column"]
        constraints = [models.UniqueConstraint(fields=["row", "column"], name="one_cell_per_column")]


class Vote(models.Model):
    TIE, ALL_BAD = "tie", "all_bad"

    row = models.ForeignKey(Row, models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="compare_votes")
    cell = models.ForeignKey(Cell, models.CASCADE, null=True, blank=True, related_name="votes")
    choice = models.CharField(max_length=8, default="cell")  # "cell", "tie" or "all_bad"
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["row", "user"], name="one_vote_per_row_and_user")]

    @classmethod
    def cast(cls, row: Row, user, choice: str, cell: Cell | None = None) -> "Vote":
        """This user's vote on the row (one per row: a new one replaces it)."""
        vote, _ = cls.objects.update_or_create(row=row, user=user, defaults={
            "cell": cell, "choice": choice, "created": timezone.now()})
        return vote
