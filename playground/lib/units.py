"""Amounts always carry their unit: a provider's own credits (KIE credits,
kvid credits, Kwiki credits) or a currency (Kawai's price table is in USD).

Two amounts of different units are never added (UnitMismatch); Totals keeps
one sum per unit, and money() converts to the money currency only through a
stated price per unit, naming what it could not convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
import re
from typing import Callable, Iterable

CURRENCY_RE = re.compile(r"[A-Z]{3}")
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


class UnitMismatch(TypeError):
    pass


@dataclass(frozen=True)
class Unit:
    code: str  # stored with every amount: "kie_credit", "USD"
    label: str  # plural, as read: "KIE credits", "USD"
    is_currency: bool = False

    def format(self, value: Decimal) -> str:
        """'3.5 KIE credits', '$0.04', '12 EUR' (money to the cent or finer)."""
        value = Decimal(value)
        if self.is_currency:
            text = _number(value, min_places=2)
            symbol = SYMBOLS.get(self.code)
            if symbol:
                return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
            return f"{text} {self.code}"
        text = _number(value)
        label = self.label[:-1] if text == "1" and self.label.endswith("credits") else self.label
        return f"{text} {label}"

    def __str__(self):
        return self.label


def currency(code: str) -> Unit:
    code = (code or "").upper()
    if not CURRENCY_RE.fullmatch(code):
        raise ValueError(f"{code!r} is not a three-letter currency code")
    return Unit(code, code, is_currency=True)


def credit_unit(code: str, label: str) -> Unit:
    return Unit(code, label, is_currency=False)


def unit_from_code(code: str, known: Callable[[str], Unit | None] | None = None) -> Unit:
    """The Unit a stored code names: a configured provider's, a currency, or
    (a provider no longer configured) one labelled from the code itself."""
    found = known(code) if known else None
    if found is not None:
        return found
    if CURRENCY_RE.fullmatch(code or ""):
        return currency(code)
    name = (code or "unknown").removesuffix("_credit")
    return Unit(code, f"{name} credits")


def _number(value: Decimal, min_places: int = 0) -> str:
    """Plain decimal text without trailing zeros (but min_places), grouped."""
    text = format(Decimal(value), "f")
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
    else:
        whole, frac = text, ""
    frac = frac.ljust(min_places, "0")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-') or 0):,}"
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


@dataclass(frozen=True)
class Amount:
    value: Decimal
    unit: Unit

    def __post_init__(self):
        if not isinstance(self.value, Decimal):
            object.__setattr__(self, "value", Decimal(str(self.value)))

    def __add__(self, other: "Amount") -> "Amount":
        if not isinstance(other, Amount):
            return NotImplemented
        if other.unit.code != self.unit.code:
            raise UnitMismatch(f"cannot add {other.unit.label} to {self.unit.label}")
        return Amount(self.value + other.value, self.unit)

    def __sub__(self, other: "Amount") -> "Amount":
        return self + Amount(-other.value, other.unit)

    def __mul__(self, n) -> "Amount":
        return Amount(self.value * Decimal(n), self.unit)

    def __str__(self):
        return self.unit.format(self.value)


class Totals:
    """One sum per unit; never a sum across units."""

    def __init__(self, amounts: Iterable[Amount] = ()):
        self._sums: dict[str, Amount] = {}
        for a in amounts:
            self.add(a)

    def add(self, amount: Amount) -> "Totals":
        have = self._sums.get(amount.unit.code)
        self._sums[amount.unit.code] = amount if have is None else have + amount
        return self

    def __iter__(self):
        return iter(sorted(self._sums.values(), key=lambda a: (a.unit.is_currency, a.unit.label)))

    def __len__(self):
        return len(self._sums)

    def __bool__(self):
        return bool(self._sums)

    def get(self, code: str) -> Amount | None:
        return self._sums.get(code)

    def __str__(self):
        return ", ".join(str(a) for a in self) or "nothing"

    def money(self, to_money: Callable[[Amount], Decimal | None], money_unit: Unit) -> "Converted":
        """The money value of what can be converted (to_money: an amount's
        value in money_unit through a stated price, or None when no price is
        set), and the amounts that could not be."""
        total = Decimal("0")
        missing = []
        for a in self:
            value = to_money(a)
            if value is None:
                missing.append(a)
            else:
                total += value
        return Converted(Amount(total, money_unit), missing)


@dataclass(frozen=True)
class Converted:
    total: Amount
    unconverted: list[Amount]

    @property
    def complete(self) -> bool:
        return not self.unconverted
