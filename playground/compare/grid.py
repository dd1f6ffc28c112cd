"""The grid of a comparison as one viewer sees it."""

from __future__ import annotations

from decimal import Decimal
import hashlib
import statistics

from django.db.models import Prefetch

from playground.generations.models import Favorite, Generation
from playground.ledger.prices import Prices
from playground.lib.units import Amount, Totals
from playground.providers import registry

from . import fanout
from .models import Cell, Comparison, Vote


def _seconds(gen: Generation | None):
    if gen is None or gen.status != Generation.SUCCEEDED or not gen.finished_at:
        return None
    return (gen.finished_at - gen.created_at).total_seconds()


def _cost(gen: Generation | None, prices: Prices):
    if gen is None:
        return None, None
    unit = registry.get_or_removed(gen.provider).unit
    if gen.status == Generation.FAILED or gen.status == Generation.CANCELED:
        value = Decimal("0")
    else:
        value = gen.credits_used if gen.credits_used is not None else gen.cost_estimate
    amount = Amount(value, unit)
    return amount, prices.money_of(amount, gen.provider)


def grid_context(user, comp: Comparison) -> dict:
    """Everything the grid shows this viewer: cells with status, time, cost
    and votes; blind rows hidden (and in their own order) until this viewer
    votes on them; the per-model column summary."""
    rows = list(comp.rows.prefetch_related(
        Prefetch("cells", queryset=Cell.objects.select_related("generation").prefetch_related("generation__images")),
    ))
    my_votes = {v.row_id: v for v in Vote.objects.filter(row__comparison=comp, user=user)}
    counts: dict[int, dict] = {}
    for v in Vote.objects.filter(row__comparison=comp):
        key = v.cell_id if v.choice == "cell" else v.choice
        counts.setdefault(v.row_id, {}).setdefault(key, 0)
        counts[v.row_id][key] += 1
    prices = Prices(comp.team)
    starred = set(Favorite.objects.filter(user=user, generation__compare_cells__row__comparison=comp)
                  .values_list("generation_id", flat=True))
    models = comp.inputs.get("models", [])
    columns = [{"key": m, "label": fanout.label(*m.split(":", 1)), "letter": chr(ord("A") + i),
                "times": [], "totals": Totals(), "failures": 0, "cells": 0, "dropped": []}
               for i, m in enumerate(models)]
    all_final = True
    grid = []
    for row in rows:
        vote = my_votes.get(row.id)
        hidden = comp.blind and vote is None
        cells = []
        for cell in row.cells.all():
            gen = cell.generation
            col = columns[cell.column] if cell.column < len(columns) else None
            amount, money = _cost(gen, prices)
            seconds = _seconds(gen)
            if gen is not None and gen.is_active:
                all_final = False
            if col is not None:
                col["cells"] += 1
                col["dropped"] = cell.dropped
                if seconds is not None:
                    col["times"].append(seconds)
                if amount is not None:
                    col["totals"].add(amount)
                if gen is None or gen.status == Generation.FAILED:
                    col["failures"] += 1
            images = list(gen.images.all()) if gen is not None else []
            cells.append({"cell": cell, "gen": gen, "image": images[0] if images else None, "seconds": seconds,
                          "amount": amount, "money": money, "hidden": hidden,
                          "label": fanout.label(cell.provider, cell.model),
                          "letter": col["letter"] if col else "?",
                          "votes": counts.get(row.id, {}).get(cell.id, 0),
                          "starred": gen is not None and gen.pk in starred})
        if hidden:
            # Each hidden row in its own order for this viewer, lettered by
            # position: a vote on one row tells nothing about the next.
            cells.sort(key=lambda c: hashlib.sha256(f"{row.uuid}:{user.pk}:{c['cell'].column}".encode())
                       .hexdigest())
            for i, c in enumerate(cells):
                c["letter"] = chr(ord("A") + i)
        grid.append({"row": row, "cells": cells, "vote": vote, "hidden": hidden,
                     "ties": counts.get(row.id, {}).get("tie", 0),
                     "all_bad": counts.get(row.id, {}).get("all_bad", 0)})
    voted_all = all(g["vote"] is not None for g in grid)
    for col in columns:
        col["median"] = statistics.median(col["times"]) if col["times"] else None
        col["money"] = prices.total(col["totals"]) if col["totals"] else None
        col["hidden"] = comp.blind and not voted_all
    return {"comp": comp, "grid": grid, "columns": columns, "all_final": all_final,
            "is_owner": comp.owner_id == user.id}
