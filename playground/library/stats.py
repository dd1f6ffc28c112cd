"""What a version's runs came to: runs, success rate, average cost (in the
provider's unit, and in money through a stated price), median time, and a
strip of its images (favorites first). Only generations the viewer may see
count."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
import statistics

from django.db.models import Exists, OuterRef, Sum

from playground.ledger.models import Entry
from playground.ledger.prices import Prices
from playground.lib.units import Amount
from playground.providers import registry
from playground.generations.models import Favorite, Generation, GenerationImage

STRIP = 12  # images in a version's strip


@dataclass
class AverageCost:
    amount: Amount
    money: Amount | None
    runs: int


@dataclass
class VersionStats:
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    success_rate: float | None = None  # of finished runs (done or failed)
    costs: list[AverageCost] = field(default_factory=list)  # one per unit
    median_seconds: float | None = None


def runs_of(version, user, team):
    """The generations made from this version that the user may see."""
    return Generation.objects.visible_to(user, team).filter(prompt_version_uuid=version.uuid)


def version_stats(version, user, team) -> VersionStats:
    gens = list(runs_of(version, user, team).only(
        "id", "team_id", "provider", "status", "cost_estimate", "credits_used", "created_at", "finished_at"))
    out = VersionStats(runs=len(gens))
    done = [g for g in gens if g.status == Generation.SUCCEEDED]
    out.succeeded = len(done)
    out.failed = sum(g.status == Generation.FAILED for g in gens)
    if out.succeeded + out.failed:
        out.success_rate = out.succeeded / (out.succeeded + out.failed)
    # What each successful run cost: its captures in the ledger, else what
    # the job recorded (credits used, else the estimate).
    captured = dict(Entry.objects.filter(kind=Entry.CAPTURE, generation__in=[g.pk for g in done])
                    .values("generation").annotate(total=Sum("amount")).values_list("generation", "total"))
    per_unit: dict[str, list] = defaultdict(list)
    for g in done:
        cost = captured.get(g.pk)
        if cost is None:
            cost = g.credits_used if g.credits_used is not None else g.cost_estimate
        unit = registry.get_or_removed(g.provider).unit
        per_unit[unit.code].append((g.provider, unit, Decimal(cost)))
    prices = Prices(team)
    for rows in per_unit.values():
        provider, unit = rows[0][0], rows[0][1]
        avg = Amount((sum(r[2] for r in rows) / len(rows)).quantize(Decimal("0.0001")), unit)
        out.costs.append(AverageCost(avg, prices.money_of(avg, provider), len(rows)))
    times = [(g.finished_at - g.created_at).total_seconds() for g in done if g.finished_at]
    if times:
        out.median_seconds = statistics.median(times)
    return out


def strip(version, user, team, limit: int = STRIP):
    """The version's images the user may see, starred ones first, then newest."""
    starred = Favorite.objects.filter(generation=OuterRef("generation"))
    return list(GenerationImage.objects.visible_to(user, team)
                .filter(generation__prompt_version_uuid=version.uuid)
                .annotate(starred=Exists(starred))
                .select_related("generation")
                .order_by("-starred", "-generation__created_at", "index")[:limit])
