"""Prices per credit: what turns a provider's credits into money.

Only a stated price converts: a team's own (CreditPrice with the team), else
the instance's (CreditPrice without a team), else settings.CREDIT_PRICES
(KIE documents 1 credit = $0.005). A unit that is the money currency itself
needs no price. Anything else is "no price set", never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db.models import Q

from playground.lib.units import Amount, Totals, Unit, currency
from playground.providers import registry


def money_unit() -> Unit:
    return currency(settings.MONEY_CURRENCY)


def default_prices() -> dict[str, Decimal]:
    out = {}
    for provider, value in (getattr(settings, "CREDIT_PRICES", None) or {}).items():
        try:
            out[provider] = Decimal(str(value))
        except InvalidOperation:
            continue
    return out


@dataclass(frozen=True)
class Price:
    provider: str
    per_unit: Decimal | None  # money per one unit of the provider's; None: not set
    source: str  # "team", "instance", "default", "currency" (the unit is money) or ""

    @property
    def is_set(self) -> bool:
        return self.per_unit is not None


class Prices:
    """The prices in force for one team, loaded in one query."""

    def __init__(self, team):
        from .models import CreditPrice

        self.team = team
        self.money = money_unit()
        rows = CreditPrice.objects.filter(Q(team=team) | Q(team__isnull=True)) if team is not None \
            else CreditPrice.objects.filter(team__isnull=True)
        self._team, self._instance = {}, {}
        for row in rows:
            (self._team if row.team_id else self._instance)[row.provider] = row.price
        self._defaults = default_prices()
        # unit code -> provider, to convert totals kept per unit
        self._by_unit = {cls.unit.code: key for key, cls in registry.adapter_classes().items()}

    def price(self, provider: str) -> Price:
        unit = registry.get_or_removed(provider).unit if provider in registry.adapter_classes() else None
        if unit is not None and unit.code == self.money.code:
            return Price(provider, Decimal("1"), "currency")
        for source, table in (("team", self._team), ("instance", self._instance), ("default", self._defaults)):
            if provider in table:
                return Price(provider, table[provider], source)
        return Price(provider, None, "")

    def provider_for_unit(self, code: str) -> str:
        return self._by_unit.get(code) or code.removesuffix("_credit")

    def to_money(self, amount: Amount, provider: str | None = None) -> Decimal | None:
        """The money value of an amount through its stated price, or None."""
        if amount.unit.code == self.money.code:
            return amount.value
        price = self.price(provider or self.provider_for_unit(amount.unit.code))
        if price.per_unit is None:
            return None
        return amount.value * price.per_unit

    def money_of(self, amount: Amount, provider: str | None = None) -> Amount | None:
        value = self.to_money(amount, provider)
        return None if value is None else Amount(value, self.money)

    def total(self, totals: Totals):
        """Converted total of Totals (per unit), naming what has no price."""
        return totals.money(self.to_money, self.money)
