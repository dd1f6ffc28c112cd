from decimal import Decimal

from django.apps import apps
from django.db.models import Count, Q, Sum
from django.shortcuts import render

from playground.accounts.access import team_required
from playground.providers import registry

from .models import Charge


@team_required
def credits(request):
    """The viewer's ledger in the current team: one charge per successful job."""
    charges = Charge.objects.visible_to(request.user, request.team)
    by_model = charges.values("provider", "model").annotate(
        n=Count("id"), credits=Sum("credits"), no_image=Count("id", filter=Q(kind=Charge.NO_IMAGE)),
    ).order_by("-credits")
    rows = []
    for row in by_model:
        # A provider or model no longer configured shows its stored keys.
        adapter = registry.get_or_removed(row["provider"])
        label = f"{adapter.label} - {registry.spec_or_removed(row['provider'], row['model']).label}"
        rows.append({**row, "label": label})
    # The one number this page shows from generations (failed jobs: never
    # charged). Looked up through the app registry: the ledger sits below
    # generations and imports nothing from it (docs/architecture.md).
    Generation = apps.get_model("generations", "Generation")
    failed = Generation.objects.visible_to(request.user, request.team).filter(status=Generation.FAILED).count()
    total = charges.aggregate(total=Sum("credits"))["total"] or Decimal("0")
    return render(request, "ledger/credits.html", {
        "rows": rows, "total": total,
        "failed": failed,
        "paid_no_image": charges.filter(kind=Charge.NO_IMAGE).count(),
        "recent": charges.select_related("generation")[:20],
    })
