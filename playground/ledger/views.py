import csv

from django.http import StreamingHttpResponse
from django.shortcuts import render

from playground.accounts.access import team_required
from playground.lib.units import Amount
from playground.providers import registry

from . import review
from .prices import Prices


@team_required
def credits(request):
    """The Credits review: filters in the URL, totals per unit (never added
    across units), money where a price is set, budgets, reconciliation."""
    return render(request, "ledger/credits.html", review.review(request))


class Echo:
    def write(self, value):
        return value


CSV_COLUMNS = ["created_at", "kind", "member", "provider", "model", "generation", "unit", "amount", "estimate",
               "reported", "basis", "no_image", "money", "currency", "note"]


def csv_rows(qs, prices: Prices):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_COLUMNS)
    units = {}
    fields = ("created_at", "kind", "username", "provider", "model", "generation_uuid", "unit", "amount",
              "estimate", "reported", "basis", "no_image", "note")
    for row in qs.order_by("created_at", "id").values_list(*fields).iterator(chunk_size=2000):
        (created_at, kind, username, provider, model, gen, unit, amount, estimate, reported, basis,
         no_image, note) = row
        u = units.get(unit) or units.setdefault(unit, registry.unit(unit))
        money = prices.to_money(Amount(amount, u), provider)
        yield writer.writerow([created_at.isoformat(), kind, username, provider, model, gen or "", unit, amount,
                               "" if estimate is None else estimate, "" if reported is None else reported, basis,
                               "yes" if no_image else "no", "" if money is None else money,
                               prices.money.code if money is not None else "", note])


@team_required
def export_csv(request):
    """The filtered ledger as CSV, one row per entry, streamed."""
    form, f, qs, is_owner = review.filtered(request)
    response = StreamingHttpResponse(csv_rows(qs, Prices(request.team)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="credits-{f["start"].isoformat()}-'
                                       f'{f["end"].isoformat()}.csv"')
    return response
