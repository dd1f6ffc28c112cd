"""Spend per day stacked by provider, as server-rendered SVG (readable
without JavaScript), with the same figures as a table.

The chart is in money: a provider's credits count only through a stated
price; providers with no price are listed as not in the chart (their
amounts stay in the table in their own units)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from playground.lib.units import Amount, Totals
from playground.providers import registry

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 640, 220, 10, 30, 56
MAX_DAYS = 92
PALETTE = 6


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Chart:
    days: list = field(default_factory=list)  # [(date, {provider: Amount money}, Totals unpriced)]
    providers: list = field(default_factory=list)  # [(key, label, css)]
    unpriced: list = field(default_factory=list)  # provider labels not in the chart
    bars: list = field(default_factory=list)
    ticks: list = field(default_factory=list)  # [(y, label)]
    xlabels: list = field(default_factory=list)  # [(x, label)]
    width: int = WIDTH
    height: int = HEIGHT
    max_value: Decimal = Decimal("0")
    truncated: bool = False
    money_unit: object = None
    spent_days: set = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return self.max_value <= 0


def build(rows, start: date, end: date, prices) -> Chart:
    """rows: (day, provider, unit, total) dicts for the filtered entries."""
    chart = Chart(money_unit=prices.money)
    if end - start > timedelta(days=MAX_DAYS - 1):
        start = end - timedelta(days=MAX_DAYS - 1)
        chart.truncated = True
    money: dict[date, dict[str, Decimal]] = {}
    unpriced_amounts: dict[date, Totals] = {}
    keys, unpriced = [], []
    for r in rows:
        day = r["day"]
        if day is None or day < start or day > end:
            continue
        a = Amount(r["total"] or Decimal("0"), registry.unit(r["unit"]))
        value = prices.to_money(a, r["provider"])
        if value is None:
            unpriced_amounts.setdefault(day, Totals()).add(a)
            label = registry.get_or_removed(r["provider"]).label
            if label not in unpriced:
                unpriced.append(label)
            continue
        if r["provider"] not in keys:
            keys.append(r["provider"])
        per = money.setdefault(day, {})
        per[r["provider"]] = per.get(r["provider"], Decimal("0")) + value
    keys.sort()
    css = {k: f"chart-p{i % PALETTE}" for i, k in enumerate(keys)}
    chart.providers = [(k, registry.get_or_removed(k).label, css[k]) for k in keys]
    chart.unpriced = sorted(unpriced)
    n = (end - start).days + 1
    days = [start + timedelta(days=i) for i in range(n)]
    chart.days = [(d, [Amount(money.get(d, {}).get(k, Decimal("0")), prices.money) for k in keys],
                   unpriced_amounts.get(d)) for d in days]
    chart.spent_days = set(money)
    chart.max_value = max((sum(v.values(), Decimal("0")) for v in money.values()), default=Decimal("0"))
    if chart.empty:
        return chart
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT) / n
    bar_w = max(step * 0.8, 1)
    scale = float(chart.max_value)
    for i, d in enumerate(days):
        y = HEIGHT - BOTTOM
        for k in keys:
            value = money.get(d, {}).get(k)
            if not value:
                continue
            h = float(value) / scale * plot_h
            y -= h
            chart.bars.append(Bar(round(LEFT + i * step, 2), round(y, 2), round(bar_w, 2), round(h, 2), css[k],
                                  f"{d.isoformat()} {registry.get_or_removed(k).label}: {prices.money.format(value)}"))
        if n <= 10 or i % max(n // 6, 1) == 0:
            chart.xlabels.append((round(LEFT + i * step + bar_w / 2, 2), d.strftime("%b %d")))
    for frac in (0, 0.5, 1):
        chart.ticks.append((round(HEIGHT - BOTTOM - frac * plot_h, 2),
                            prices.money.format((chart.max_value * Decimal(str(frac))).quantize(Decimal("0.01")))))
    return chart
