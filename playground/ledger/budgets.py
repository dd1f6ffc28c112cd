"""Budgets: which ones a run touches (applicable(), the one rule), what each
has left, and the check that holds them.

A budget's use in its current period = captures and adjustments written in
the period + reservations written in the period that are not yet settled
(neither captured nor released). Amounts in another unit count only through
a stated price; a hard money budget refuses a run whose own unit has no
price (it could not be held otherwise), and names the missing price.

reserve() (book.py) checks under a lock on the budget rows: row locks on
PostgreSQL; on SQLite every transaction is IMMEDIATE (settings), so writers
take turns. Two submissions can never both take the last of a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from playground.lib.units import Amount, Unit

from .models import Budget, Entry
from .prices import Prices


def period_bounds(period: str, zone, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """[start, end) of the calendar period containing now: midnights in the
    zone (a week runs Monday to Monday)."""
    if period == Budget.NONE:
        return None, None
    today = (now or timezone.now()).astimezone(zone).date()
    if period == Budget.DAY:
        first, after = today, today + timedelta(days=1)
    elif period == Budget.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return (datetime(first.year, first.month, first.day, tzinfo=zone),
            datetime(after.year, after.month, after.day, tzinfo=zone))


def applicable(team, user, provider: str | None = None, api_token=None, *, lock: bool = False) -> list[Budget]:
    """The one rule of which budgets a run touches; every caller asks here:
    the quote (the playground form's estimate, book.quote), the compare
    grid's quote (check), and the hold when a job is made (book.reserve: the
    form, the compare grid and the API all make jobs through pipeline.create).

    A run of this user touches the team's budgets and this member's; on a
    provider (None: every provider), the budgets for all providers and those
    for that one, whatever their unit (an amount counts in a budget's unit
    only through in_unit). A run through an API token (api_token: the token
    or its id) also touches that token's budgets; the budgets of tokens touch
    nothing else. team, user: the objects or their ids.

    The team's budgets are read in one plain query (by id) and picked here:
    building a filtered query cost more than running it, and reserve() runs
    this for every job, inside its write transaction. lock: take row locks
    on them where the database has them (PostgreSQL: concurrent submissions
    take turns; SQLite needs none, its transactions are IMMEDIATE)."""
    team_id, user_id, token_id = _pk(team), _pk(user), _pk(api_token)
    rows = Budget.objects.filter(team_id=team_id).order_by("id")
    if lock and connection.features.has_select_for_update:
        rows = rows.select_for_update()
    out = []
    for budget in rows:
        if provider is not None and budget.provider and budget.provider != provider:
            continue
        if budget.api_token_id is not None:
            if token_id is None or budget.api_token_id != token_id:
                continue
        elif budget.member_id is not None and budget.member_id != user_id:
            continue
        out.append(budget)
    return out


def _pk(obj):
    return getattr(obj, "pk", obj)


def settled_subquery():
    return Entry.objects.filter(generation_uuid=OuterRef("generation_uuid"),
                                kind__in=(Entry.CAPTURE, Entry.RELEASE))


def counted(qs):
    """Entries that use up a budget: spend, and reservations still open."""
    return qs.annotate(settled=Exists(settled_subquery())).filter(
        Q(kind__in=(Entry.CAPTURE, Entry.ADJUSTMENT)) | Q(kind=Entry.RESERVE, settled=False))


@dataclass
class BudgetStatus:
    budget: Budget
    limit: Amount
    used: Amount
    # Spend in units with no price, not counted in a money budget (named).
    unconverted: list[Amount] = field(default_factory=list)
    start: datetime | None = None
    resets_at: datetime | None = None
    # For a check of a run: what it needs in the budget's unit (None when
    # it cannot be converted: no price for its unit).
    needs: Amount | None = None
    run_unpriced: Amount | None = None

    @property
    def left(self) -> Amount:
        return Amount(max(self.limit.value - self.used.value, Decimal("0")), self.limit.unit)

    @property
    def over_now(self) -> bool:
        return self.used.value > self.limit.value

    @property
    def fraction(self) -> float:
        if self.limit.value <= 0:
            return 1.0 if self.used.value > 0 else 0.0
        return float(min(self.used.value / self.limit.value, Decimal("1")))

    @property
    def percent(self) -> int:
        return round(self.fraction * 100)

    @property
    def would_exceed(self) -> bool:
        """The run does not fit: it needs more than is left, or cannot be
        measured in this budget's unit."""
        if self.run_unpriced is not None:
            return True
        return self.needs is not None and self.used.value + self.needs.value > self.limit.value

    @property
    def days_to_reset(self) -> int | None:
        if self.resets_at is None:
            return None
        return max(0, (self.resets_at - timezone.now() + timedelta(hours=23, minutes=59)).days)

    @property
    def resets_text(self) -> str:
        if self.resets_at is None:
            return "no period: never resets"
        seconds = (self.resets_at - timezone.now()).total_seconds()
        if seconds < 3600:
            return f"resets in {max(1, round(seconds / 60))} min"
        if seconds < 86400:
            hours = round(seconds / 3600)
            return f"resets in {hours} hour{'s' if hours != 1 else ''}"
        days = self.days_to_reset
        return f"resets in {days} day{'s' if days != 1 else ''}"

    def refusal(self) -> str:
        name = self.budget.name
        if self.run_unpriced is not None:
            return (f"{name}: this run costs {self.run_unpriced}, and no price is set for "
                    f"{self.run_unpriced.unit.label}, so it cannot be counted against a budget in "
                    f"{self.limit.unit.label}. A team owner can set the price on the Credits page.")
        return (f"{name}: {self.left} left of {self.limit}, and this run needs {self.needs}. "
                "Nothing was sent.")

    def warning(self) -> str:
        if self.run_unpriced is not None:
            return f"{self.budget.name} (soft): this run's {self.run_unpriced.unit.label} have no price, not counted."
        return f"{self.budget.name} (soft): {self.left} left of {self.limit}; this run needs {self.needs} and goes over."


def status(budget: Budget, prices: Prices, now: datetime | None = None, team=None) -> BudgetStatus:
    """What a budget has used in its current period (one query)."""
    team = team or budget.team
    start, end = period_bounds(budget.period, team.zone, now)
    qs = Entry.objects.filter(team_id=budget.team_id)
    if budget.api_token_id:
        qs = qs.filter(api_token_id=budget.api_token_id)  # its own index (api_token, created_at)
    elif budget.member_id:
        qs = qs.filter(user_id=budget.member_id)
    if budget.provider:
        qs = qs.filter(provider=budget.provider)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    unit = budget.unit_obj
    used = Decimal("0")
    unconverted = []
    rows = counted(qs).values("provider", "unit").annotate(total=Sum("amount")).order_by()
    for row in rows:
        value = in_unit(Amount(row["total"] or Decimal("0"), _unit(row["unit"])), unit, prices, row["provider"])
        if value is None:
            unconverted.append(Amount(row["total"], _unit(row["unit"])))
        else:
            used += value
    return BudgetStatus(budget, Amount(budget.amount, unit), Amount(used, unit), unconverted,
                        start=start, resets_at=end)


def _unit(code: str) -> Unit:
    from playground.providers import registry

    return registry.unit(code)


def in_unit(amount: Amount, unit: Unit, prices: Prices, provider: str) -> Decimal | None:
    """amount expressed in unit: the same unit as is, money through a price."""
    if amount.unit.code == unit.code:
        return amount.value
    if unit.code == prices.money.code:
        return prices.to_money(amount, provider)
    return None


def check(team, user, costs: dict[str, Amount], prices: Prices | None = None, now: datetime | None = None,
          api_token=None, *, lock: bool = False) -> list[BudgetStatus]:
    """Every budget a run touches (applicable()), each once, with what the
    run needs in its unit. costs: {provider: what the run costs on it, in the
    provider's unit}: one provider for a job, several for a compare grid,
    whose budget for all providers (in money) then adds up every provider's
    cells. Amounts of different units are never added: each is converted to
    the budget's unit first (in_unit); one that cannot be (no price) makes the
    run unpriced for that budget. prices are read only when a budget is
    touched (a query fewer per job otherwise). lock: see applicable()."""
    merged: dict[int, BudgetStatus] = {}
    for provider, cost in costs.items():
        for budget in applicable(team, user, provider, api_token, lock=lock):
            st = merged.get(budget.pk)
            if st is None:
                prices = prices or Prices(team)
                st = merged[budget.pk] = status(budget, prices, now, team=team)
            value = in_unit(cost, st.limit.unit, prices, provider)
            if value is None:
                if st.run_unpriced is None:  # the first cost it cannot count is named
                    st.run_unpriced = cost
            else:
                needs = Amount(value, st.limit.unit)
                st.needs = needs if st.needs is None else st.needs + needs
    return list(merged.values())


class BudgetExceeded(Exception):
    """A hard budget refuses the run: nothing is created, nothing is sent."""

    def __init__(self, refused: list[BudgetStatus]):
        self.refused = refused
        super().__init__(" ".join(s.refusal() for s in refused))

    @property
    def message(self) -> str:
        return "Over budget. " + str(self)
