"""The Credits review: filters (in the URL), and the aggregates the page
shows, each one query whatever the number of entries.

Owners see the whole team (and may filter by member); members see only
their own entries. Totals are kept per unit (Totals never adds across
units); money totals convert only through a stated price (Prices) and name
what has no price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django import forms
from django.db import connection
from django.db.models import Count, DateField, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.utils import timezone

from playground.accounts.models import Membership
from playground.lib.units import Amount, Totals
from playground.providers import registry

from . import budgets
from .models import Budget, Entry, ProviderBalance
from .prices import Prices

SPENT, ALL, NO_IMAGE = "", "all", "no_image"
STATUSES = [
    (SPENT, "Spent (captures and adjustments)"),
    (Entry.CAPTURE, "Captures"),
    (Entry.ADJUSTMENT, "Adjustments"),
    (Entry.RESERVE, "Reservations"),
    (Entry.RELEASE, "Releases"),
    (NO_IMAGE, "Paid, no image"),
    (ALL, "All entries"),
]


def month_bounds(zone, now=None) -> tuple[date, date]:
    today = (now or timezone.now()).astimezone(zone).date()
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first, last


class ReviewFilter(forms.Form):
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    provider = forms.ChoiceField(required=False, choices=())
    model = forms.CharField(required=False, max_length=60)
    member = forms.ChoiceField(required=False, choices=())
    status = forms.ChoiceField(required=False, choices=STATUSES)

    def __init__(self, data, *, team, user, is_owner: bool):
        first, last = month_bounds(team.zone)
        super().__init__(data, initial={"start": first, "end": last})
        self.team, self.user, self.is_owner = team, user, is_owner
        self.fields["provider"].choices = [("", "All providers")] + [
            (key, cls.label) for key, cls in sorted(registry.adapter_classes().items())]
        if is_owner:
            names = (Membership.objects.filter(team=team).select_related("user")
                     .order_by("user__username").values_list("user__username", flat=True))
            self.fields["member"].choices = [("", "Everyone")] + [(n, n) for n in names]
        else:
            del self.fields["member"]

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        return data

    def values(self) -> dict:
        """The filters in force: the valid ones, defaults for the rest."""
        first, last = month_bounds(self.team.zone)
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "start": data.get("start") or first,
            "end": data.get("end") or last,
            "provider": data.get("provider") or "",
            "model": data.get("model") or "",
            "member": (data.get("member") or "") if self.is_owner else "",
            "status": data.get("status") or SPENT,
        }


def scope(team, user, is_owner: bool):
    """Every entry the viewer may see in the team."""
    if is_owner:
        return Entry.objects.filter(team=team)
    return Entry.objects.visible_to(user, team)


def apply(qs, f: dict, zone):
    start = datetime(f["start"].year, f["start"].month, f["start"].day, tzinfo=zone)
    after = f["end"] + timedelta(days=1)
    qs = qs.filter(created_at__gte=start, created_at__lt=datetime(after.year, after.month, after.day, tzinfo=zone))
    if f["provider"]:
        qs = qs.filter(provider=f["provider"])
    if f["model"]:
        qs = qs.filter(model=f["model"])
    if f["member"]:
        qs = qs.filter(Q(user__username=f["member"]) | Q(user__isnull=True, username=f["member"]))
    status = f["status"]
    if status == SPENT:
        qs = qs.spend()
    elif status == NO_IMAGE:
        qs = qs.filter(no_image=True)
    elif status != ALL:
        qs = qs.filter(kind=status)
    return qs


def filtered(request) -> tuple[ReviewFilter, dict, object, bool]:
    is_owner = request.membership.role == Membership.OWNER
    form = ReviewFilter(request.GET or None, team=request.team, user=request.user, is_owner=is_owner)
    f = form.values()
    qs = apply(scope(request.team, request.user, is_owner), f, request.team.zone)
    return form, f, qs, is_owner


def amount(value, code) -> Amount:
    return Amount(value or Decimal("0"), registry.unit(code))


@dataclass
class Line:
    """One row of a breakdown: a label, its amount (one unit), job count."""
    label: str
    amount: Amount
    jobs: int
    money: Amount | None = None
    no_image: bool = False
    provider: str = ""


@dataclass
class Group:
    label: str
    totals: Totals = field(default_factory=Totals)
    jobs: int = 0
    lines: list = field(default_factory=list)
    money: object = None


def provider_label(key: str) -> str:
    return registry.get_or_removed(key).label if key else "—"


def model_label(provider: str, model: str) -> str:
    """The model's name as the playground shows it ("Seedream V4"), or its
    stored key once the model is no longer configured."""
    if not model:
        return "(no model)"
    try:
        return registry.spec_or_removed(provider, model).label
    except Exception:  # a provider that is gone: its stored key
        return model


def job_kind(status: str) -> str:
    """The kind of entry that counts jobs under a status filter: a
    generation has at most one entry of each kind (a database constraint), so
    counting that kind's rows counts generations, without a costly DISTINCT.
    Every generation is reserved once, so "all entries" counts reservations."""
    return {Entry.RESERVE: Entry.RESERVE, Entry.RELEASE: Entry.RELEASE, Entry.ADJUSTMENT: Entry.ADJUSTMENT,
            ALL: Entry.RESERVE}.get(status, Entry.CAPTURE)


def jobs_count(status: str) -> Count:
    kind = job_kind(status)
    return Count("id", filter=Q(kind=kind, generation_uuid__isnull=False))


def by_provider_model(qs, prices: Prices, status: str = SPENT) -> list[Group]:
    """Per provider (totals per unit), then per model; work paid for with no
    stored image is its own "paid, no image" line. One query."""
    rows = (qs.values("provider", "model", "unit", "no_image")
            .annotate(total=Sum("amount"), jobs=jobs_count(status))
            .order_by("provider", "model", "no_image", "unit"))
    groups: dict[str, Group] = {}
    for r in rows:
        g = groups.setdefault(r["provider"], Group(provider_label(r["provider"])))
        a = amount(r["total"], r["unit"])
        g.totals.add(a)
        g.jobs += r["jobs"]
        g.lines.append(Line(model_label(r["provider"], r["model"]), a, r["jobs"], prices.money_of(a, r["provider"]),
                            r["no_image"], g.label))
    return list(groups.values())


def by_member(qs, prices: Prices, status: str = SPENT) -> list[Group]:
    rows = (qs.values("username", "provider", "unit")
            .annotate(total=Sum("amount"), jobs=jobs_count(status))
            .order_by("username", "provider", "unit"))
    groups: dict[str, Group] = {}
    for r in rows:
        g = groups.setdefault(r["username"], Group(r["username"] or "deleted user"))
        a = amount(r["total"], r["unit"])
        g.totals.add(a)
        g.jobs += r["jobs"]
    for g in groups.values():
        g.money = prices.total(g.totals)
    return list(groups.values())


def no_image_lines(groups: list[Group]) -> list[Line]:
    return [line for g in groups for line in g.lines if line.no_image]


@dataclass
class Reconciled:
    provider: str
    model: str
    jobs: int
    estimate: Amount
    reported: Amount

    @property
    def difference(self) -> Amount:
        return self.reported - self.estimate


def reconciliation(qs) -> list[Reconciled]:
    """Captures with a provider-reported figure: estimate vs reported per
    model. One query."""
    rows = (qs.filter(kind=Entry.CAPTURE, reported__isnull=False, estimate__isnull=False)
            .values("provider", "model", "unit")
            .annotate(estimate=Sum("estimate"), reported=Sum("reported"), jobs=Count("id"))
            .order_by("provider", "model", "unit"))
    return [Reconciled(provider_label(r["provider"]), model_label(r["provider"], r["model"]), r["jobs"],
                       amount(r["estimate"], r["unit"]), amount(r["reported"], r["unit"])) for r in rows]


def totals_of(qs) -> Totals:
    return Totals(amount(r["total"], r["unit"])
                  for r in qs.values("unit").annotate(total=Sum("amount")).order_by("unit"))


def per_day(qs, zone, start: date | None = None, end: date | None = None):
    """(day, provider, unit, total) rows, the day in the team's zone. One query."""
    day = local_day(zone, start, end) if connection.vendor == "sqlite" and start and end else \
        TruncDate("created_at", tzinfo=zone)
    return (qs.annotate(day=day).values("day", "provider", "unit")
            .annotate(total=Sum("amount")).order_by("day", "provider"))


def offsets(zone, start: date, end: date) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets over [start, end]: (until, seconds) segments,
    the last one open (until None). Found day by day, then to the minute
    within a day where the offset changes (DST)."""
    def offset(t):
        return int(t.astimezone(zone).utcoffset().total_seconds())

    utc = dt_timezone.utc
    t = datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(utc) - timedelta(days=1)
    stop = datetime(end.year, end.month, end.day, tzinfo=zone).astimezone(utc) + timedelta(days=2)
    segments, current = [], offset(t)
    while t < stop:
        nxt = t + timedelta(days=1)
        if offset(nxt) != current:
            lo, hi = t, nxt  # the change is in (lo, hi]: narrow it to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
            segments.append((hi.replace(second=0, microsecond=0), current))
            current = offset(hi)
        t = nxt
    segments.append((None, current))
    return segments


def local_day(zone, start: date, end: date) -> RawSQL:
    """The entry's day in the zone with SQLite's own date() (C), instead of
    a Python function called per row (TruncDate on SQLite): 20x faster at
    100,000 entries. SQLite keeps datetimes as UTC text "YYYY-MM-DD HH:MM:SS"."""
    column = f'{connection.ops.quote_name(Entry._meta.db_table)}."created_at"'
    whens, params = [], []
    for until, seconds in offsets(zone, start, end):
        modifier = f"{seconds:+d} seconds"
        if until is None:
            whens.append(f"ELSE date({column}, %s)")
            params.append(modifier)
        else:
            whens.append(f"WHEN {column} < %s THEN date({column}, %s)")
            params += [until.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), modifier]
    sql = f"CASE {' '.join(whens)} END" if len(whens) > 1 else f"date({column}, %s)"
    return RawSQL(sql, params, output_field=DateField())


def visible_budgets(team, user, is_owner: bool):
    qs = Budget.objects.filter(team=team).select_related("member", "team", "api_token")
    if not is_owner:
        qs = qs.filter(Q(member__isnull=True) | Q(member=user))
    return qs


def top_by_cost(qs, prices: Prices, limit: int = 8) -> list:
    """The costliest captures in the range, ranked by money (amounts in
    different units compare only through their prices; captures in a unit
    with no price are not ranked), with their generation and its images."""
    from django.db.models import Case, DecimalField, F, Value, When

    whens = []
    for code in qs.filter(kind=Entry.CAPTURE).values_list("unit", flat=True).distinct().order_by():
        per_unit = Decimal("1") if code == prices.money.code else prices.price(prices.provider_for_unit(code)).per_unit
        if per_unit is not None:
            whens.append(When(unit=code, then=F("amount") * Value(per_unit)))
    if not whens:
        return []
    money = Case(*whens, default=None, output_field=DecimalField(max_digits=20, decimal_places=8))
    rows = (qs.filter(kind=Entry.CAPTURE, generation__isnull=False).annotate(money=money)
            .filter(money__isnull=False).order_by("-money", "-created_at")
            .select_related("generation").prefetch_related("generation__images")[:limit])
    return [(e, amount(e.amount, e.unit), Amount(e.money, prices.money)) for e in rows]


def review(request) -> dict:
    from . import chart

    form, f, qs, is_owner = filtered(request)
    team, user = request.team, request.user
    prices = Prices(team)
    groups = by_provider_model(qs, prices, f["status"])
    # The range's totals per unit, from the same rows (no second scan).
    totals = Totals(a for g in groups for a in g.totals)
    return {
        "form": form, "filters": f, "is_owner": is_owner,
        "totals": totals, "money": prices.total(totals),
        "providers": groups,
        "no_image": no_image_lines(groups),
        "members": by_member(qs, prices, f["status"]) if is_owner else None,
        "reconciliation": reconciliation(qs),
        "chart": chart.build(per_day(qs, team.zone, f["start"], f["end"]), f["start"], f["end"], prices),
        "budgets": [budgets.status(b, prices, team=team) for b in visible_budgets(team, user, is_owner)],
        "balances": [(b, amount(b.amount, b.unit)) for b in ProviderBalance.objects.filter(team=team).order_by("provider")],
        "lifetime": totals_of(scope(team, user, is_owner).spend()),
        # Members see their own lines, and the team's spend in the range as a total only.
        "team_totals": None if is_owner else totals_of(
            apply(Entry.objects.filter(team=team), {**f, "member": "", "status": SPENT}, team.zone)),
        "recent": [(e, amount(e.amount, e.unit), f"{provider_label(e.provider)} - {model_label(e.provider, e.model)}")
                   for e in qs.select_related("generation")[:50]],
        "prices": prices,
        "top": top_by_cost(qs, prices),
    }
