from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from playground.accounts.visibility import visible_queryset


class Charge(models.Model):
    """The ledger: one row per charged generation, written in the same
    transaction that marks it succeeded. The unique generation makes a second
    charge impossible, whoever tries (RELIABILITY 3). Failed jobs have none,
    except one the provider finished (and charged for) whose image could not
    be saved: a "paid, no image" row, written with the failure."""

    REPORTED, ESTIMATE = "reported", "estimate"
    IMAGE, NO_IMAGE = "image", "no_image"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", models.CASCADE, related_name="charges")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="charges")
    generation = models.OneToOneField("generations.Generation", models.CASCADE, related_name="charge")
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=60)
    credits = models.DecimalField(max_digits=12, decimal_places=4)
    basis = models.CharField(max_length=10, choices=[(REPORTED, "reported by the provider"), (ESTIMATE, "price-table estimate")])
    kind = models.CharField(max_length=10, default=IMAGE,
                            choices=[(IMAGE, "image saved"), (NO_IMAGE, "paid, no image")])
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = visible_queryset("team", "user").as_manager()

    class Meta:
        db_table = "core_charge"
        ordering = ["-created_at"]
