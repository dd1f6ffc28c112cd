from django.db.models import Sum
from django.shortcuts import render

from playground.accounts.access import team_required
from playground.lib.units import Amount, Totals
from playground.providers import registry

from .models import Entry
from .prices import Prices


@team_required
def credits(request):
    """The viewer's spend in the current team, per unit (never added across units)."""
    entries = Entry.objects.visible_to(request.user, request.team)
    prices = Prices(request.team)
    totals = Totals(Amount(r["total"], registry.unit(r["unit"]))
                    for r in entries.spend().values("unit").annotate(total=Sum("amount")).order_by())
    return render(request, "ledger/credits.html", {
        "totals": totals, "money": prices.total(totals),
        "recent": entries.filter(kind=Entry.CAPTURE).select_related("generation")[:20],
    })
