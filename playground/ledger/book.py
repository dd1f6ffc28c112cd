"""Writing the ledger: reserve, capture, release, adjust (django-oscar's
allocate / debit / refund shape). The job pipeline calls these inside the
transaction that moves the job, so a job's state and its entries change
together or not at all.

The ledger sits below generations (docs/architecture.md): it takes a
generation and reads its fields, and imports nothing from that app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from playground.lib.units import Amount
from playground.providers import registry

from . import budgets as budgets_mod
from .budgets import BudgetExceeded, BudgetStatus
from .models import Entry, ProviderBalance
from .prices import Prices


def _user_fields(user) -> dict:
    return {"user": user, "username": user.get_username() if user is not None else ""}


def _generation_fields(gen) -> dict:
    return {
        "team_id": gen.team_id, "generation": gen, "generation_uuid": gen.uuid, "api_token_id": gen.api_token_id,
        "provider": gen.provider, "model": gen.model, "unit": registry.get_or_removed(gen.provider).unit.code,
    }


@dataclass
class Quote:
    """What a run costs (its unit, and money where a price is set) and what
    each budget it touches has left."""

    cost: Amount
    money: Amount | None
    budgets: list[BudgetStatus] = field(default_factory=list)

    @property
    def refused(self) -> list[BudgetStatus]:
        return [b for b in self.budgets if b.budget.hard and b.would_exceed]

    @property
    def warnings(self) -> list[BudgetStatus]:
        return [b for b in self.budgets if not b.budget.hard and b.would_exceed]


def quote(team, user, provider: str, amount: Decimal, prices: Prices | None = None, api_token=None) -> Quote:
    """A run's cost and the budgets it touches (budgets.applicable; no lock,
    nothing written); api_token: a run through that token also meets the
    token's budgets."""
    prices = prices or Prices(team)
    cost = Amount(amount, registry.get_or_removed(provider).unit)
    return Quote(cost, prices.money_of(cost, provider),
                 budgets_mod.check(team, user, {provider: cost}, prices, api_token=api_token))


def reserve(gen) -> list[BudgetStatus]:
    """Hold the job's estimate against every budget it touches, or refuse
    (BudgetExceeded) when a hard one would be exceeded. Call inside the
    transaction that creates the job: a refusal rolls the job back, so
    nothing is sent. Returns the soft budgets the run goes over (warnings).
    The budgets are those of the quote (budgets.applicable), for the job's
    owner, provider and API token, read under a lock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("reserve() must run inside the transaction that creates the job")
    cost = Amount(gen.cost_estimate, registry.get_or_removed(gen.provider).unit)
    statuses = budgets_mod.check(gen.team, gen.owner_id, {gen.provider: cost}, api_token=gen.api_token_id, lock=True)
    refused = [s for s in statuses if s.budget.hard and s.would_exceed]
    if refused:
        raise BudgetExceeded(refused)
    Entry.objects.create(kind=Entry.RESERVE, amount=gen.cost_estimate, **_generation_fields(gen),
                         **_user_fields(gen.owner))
    return [s for s in statuses if not s.budget.hard and s.would_exceed]


def capture(gen, reported: Decimal | None, *, no_image: bool = False) -> Entry:
    """What the job cost: the provider's figure where it reports one, else
    the estimate; both kept. At most once per generation (a constraint)."""
    return Entry.objects.create(
        kind=Entry.CAPTURE, amount=reported if reported is not None else gen.cost_estimate,
        estimate=gen.cost_estimate, reported=reported,
        basis=Entry.REPORTED if reported is not None else Entry.ESTIMATE, no_image=no_image,
        **_generation_fields(gen), **_user_fields(gen.owner),
    )


def release(gen, note: str = "") -> Entry | None:
    """Nothing was spent (failed, or canceled before it was sent): free what
    was reserved. A job with no reservation (made before the ledger had
    them) has nothing to release."""
    held = Entry.objects.filter(generation_uuid=gen.uuid, kind=Entry.RESERVE).values_list("amount", flat=True).first()
    if held is None:
        return None
    return Entry.objects.create(kind=Entry.RELEASE, amount=held, note=note[:500],
                                **_generation_fields(gen), **_user_fields(gen.owner))


def adjust(*, team, provider: str, amount: Decimal, note: str, by, user=None, model: str = "", unit: str | None = None,
           generation=None) -> Entry:
    """A signed correction (e.g. a provider's refund), written by an owner
    or an admin, with a reason."""
    if not note.strip():
        raise ValueError("An adjustment needs a reason.")
    return Entry.objects.create(
        kind=Entry.ADJUSTMENT, team=team, provider=provider, model=model,
        unit=unit or registry.get_or_removed(provider).unit.code, amount=amount, note=note.strip()[:500],
        created_by=by, generation=generation, generation_uuid=generation.uuid if generation is not None else None,
        api_token_id=generation.api_token_id if generation is not None else None,
        **_user_fields(user),
    )


def note_balance(team, provider: str, amount) -> None:
    """Keep the last balance the provider reported for this team's key."""
    try:
        value = Decimal(str(amount))
    except (ArithmeticError, ValueError, TypeError):
        return
    if not value.is_finite() or abs(value) >= Decimal("1e10"):
        return  # a provider's nonsense is not a balance
    from django.utils import timezone

    ProviderBalance.objects.update_or_create(
        team=team, provider=provider,
        defaults={"amount": value, "unit": registry.get_or_removed(provider).unit.code, "seen_at": timezone.now()},
    )


__all__ = ["BudgetExceeded", "Quote", "adjust", "capture", "note_balance", "quote", "release", "reserve"]
