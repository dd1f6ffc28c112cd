"""The ledger (django-oscar's source/transaction shape): append-only entries
in the provider's own unit, budgets, prices per credit and the last balance a
provider reported.

Per generation: one reserve when it is submitted (the quoted amount, held
against budgets), then a capture (what was spent: the provider's figure where
it reports one, else the estimate; both kept) or a release (nothing spent).
A job failed as "unknown outcome" and later taken back may have both a
release and a capture. Database constraints, not hopes, hold "at most once".
Adjustments are signed corrections by a team owner or an admin.

Entries keep the names they were written with: deleting a user or a
generation never erases spend history.
"""

from __future__ import annotations

from decimal import Decimal
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from playground.accounts.visibility import visible_queryset
from playground.providers import registry

PERIODS = [("month", "per calendar month"), ("week", "per calendar week"), ("day", "per day"), ("none", "no period")]


class EntryQuerySet(visible_queryset("team", "user")):
    def spend(self):
        """The entries that are money spent: captures and adjustments."""
        return self.filter(kind__in=(Entry.CAPTURE, Entry.ADJUSTMENT))


class Entry(models.Model):
    RESERVE, CAPTURE, RELEASE, ADJUSTMENT = "reserve", "capture", "release", "adjustment"
    KINDS = [(RESERVE, "reserve"), (CAPTURE, "capture"), (RELEASE, "release"), (ADJUSTMENT, "adjustment")]
    REPORTED, ESTIMATE = "reported", "estimate"
    BASES = [(REPORTED, "reported by the provider"), (ESTIMATE, "price-table estimate")]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=10, choices=KINDS)
    team = models.ForeignKey("accounts.Team", models.PROTECT, related_name="ledger_entries")
    # Kept when the user is deleted: the username stays on the entry.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                             related_name="ledger_entries")
    username = models.CharField(max_length=150, blank=True)
    # Kept when the generation is deleted: its uuid stays on the entry (and
    # carries the once-only constraints).
    generation = models.ForeignKey("generations.Generation", models.SET_NULL, null=True, blank=True,
                                   related_name="ledger_entries")
    generation_uuid = models.UUIDField(null=True, blank=True)
    # The API token the generation came through, copied when the entry is
    # written: a token's budget counts its entries even after the generation
    # is deleted, with one indexed filter (no join).
    api_token = models.ForeignKey("accounts.ApiToken", models.SET_NULL, null=True, blank=True,
                                  related_name="ledger_entries")
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=60, blank=True)
    unit = models.CharField(max_length=40)
    # Positive for reserve, capture and release; signed for an adjustment.
    amount = models.DecimalField(max_digits=14, decimal_places=4)
    # On a capture: the price-table estimate and the provider's own figure
    # (None when it reports none). amount is the reported one when there is one.
    estimate = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    reported = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    basis = models.CharField(max_length=10, choices=BASES, blank=True)
    # A capture for work the provider charged for that produced no stored image.
    no_image = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = EntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["team", "created_at"], name="ledger_team_time"),
            models.Index(fields=["team", "user", "created_at"], name="ledger_team_user_time"),
            models.Index(fields=["generation_uuid", "kind"], name="ledger_gen_kind"),
            models.Index(fields=["api_token", "created_at"], name="ledger_token_time"),
        ]
        constraints = [
            # Reserved once, captured at most once, released at most once.
            models.UniqueConstraint(fields=["generation_uuid", "kind"], condition=~Q(kind="adjustment"),
                                    name="ledger_once_per_generation_and_kind"),
            models.CheckConstraint(condition=Q(kind="adjustment") | Q(generation_uuid__isnull=False),
                                   name="ledger_generation_entries_name_it"),
            models.CheckConstraint(condition=Q(kind="adjustment") | Q(amount__gte=0),
                                   name="ledger_amounts_not_negative"),
        ]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.unit} ({self.provider}/{self.model})"

    def save(self, *args, **kwargs):
        # Append-only: an entry is written once and never changed.
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("Ledger entries cannot be changed: add an adjustment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Ledger entries cannot be deleted: add an adjustment instead.")

    @property
    def unit_obj(self):
        return registry.unit(self.unit)

    @property
    def difference(self) -> Decimal | None:
        """Reported minus estimated, on a capture with both."""
        if self.reported is None or self.estimate is None:
            return None
        return self.reported - self.estimate

    @property
    def who(self) -> str:
        return self.user.get_username() if self.user_id and self.user else (self.username or "deleted user")


class CreditPrice(models.Model):
    """The price of one of a provider's credits in the money currency
    (settings.MONEY_CURRENCY). A team's own row wins over the instance's (team
    empty); settings.CREDIT_PRICES gives the instance defaults (KIE documents
    1 credit = $0.005). A provider whose unit is the money currency needs none."""

    team = models.ForeignKey("accounts.Team", models.CASCADE, null=True, blank=True, related_name="credit_prices")
    provider = models.CharField(max_length=40)
    price = models.DecimalField(max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal("0"))])
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "provider"], name="one_price_per_team_and_provider"),
            models.UniqueConstraint(fields=["provider"], condition=Q(team__isnull=True),
                                    name="one_instance_price_per_provider"),
            models.CheckConstraint(condition=Q(price__gte=0), name="price_not_negative"),
        ]

    def __str__(self):
        return f"{self.provider}: {self.price} {settings.MONEY_CURRENCY} per credit"


class Budget(models.Model):
    """A limit on spend: for the team, one member or one of a member's API
    tokens, for one provider (in its unit or in money) or all providers (in
    money), per calendar period in the team's time zone or with no period.
    Hard budgets refuse a run before anything is sent; soft ones warn.

    A token's budget (api_token set; member is the token's user) counts only
    what was run through that token, and touches nothing else."""

    MONTH, WEEK, DAY, NONE = "month", "week", "day", "none"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", models.CASCADE, related_name="budgets")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, null=True, blank=True, related_name="budgets",
                               help_text="Empty: the whole team.")
    api_token = models.ForeignKey("accounts.ApiToken", models.CASCADE, null=True, blank=True, related_name="budgets",
                                  help_text="Set: only runs through this API token count, and only they are held.")
    provider = models.CharField(max_length=40, blank=True, help_text="Empty: all providers (in money).")
    unit = models.CharField(max_length=40)
    amount = models.DecimalField(max_digits=14, decimal_places=4, validators=[MinValueValidator(Decimal("0"))])
    period = models.CharField(max_length=5, choices=PERIODS, default=MONTH)
    hard = models.BooleanField(default=True, help_text="Hard: refuse a run that would go over. Soft: warn, allow.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["member_id", "provider", "id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="budget_not_negative")]

    def __str__(self):
        return self.name

    @property
    def name(self) -> str:
        period = {"month": "monthly", "week": "weekly", "day": "daily", "none": "overall"}[self.period]
        if self.api_token_id:
            where = f" for {registry.get_or_removed(self.provider).label}" if self.provider else ""
            return f"API token '{self.api_token.name}' budget ({period}{where})"
        who = f"{self.member.get_username()}'s" if self.member_id else "Team"
        where = registry.get_or_removed(self.provider).label if self.provider else "all providers"
        return f"{who} {period} budget for {where}"

    @property
    def unit_obj(self):
        return registry.unit(self.unit)


class ProviderBalance(models.Model):
    """The last balance a provider reported for a team's key (Kwiki's 402
    carries the credits available), with when it was seen."""

    team = models.ForeignKey("accounts.Team", models.CASCADE, related_name="provider_balances")
    provider = models.CharField(max_length=40)
    amount = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=40)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "provider"], name="one_balance_per_team_and_provider")]

    @property
    def unit_obj(self):
        return registry.unit(self.unit)
