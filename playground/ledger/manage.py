"""Owners manage budgets and the team's prices per credit. Members see the
team's budgets and their own, read-only; changes by a member 404, like
anything they may not touch."""

from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.accounts.models import Membership
from playground.providers import registry

from . import budgets as budget_rules
from .forms import BudgetForm, PriceForm
from .models import Budget, CreditPrice
from .prices import Prices


def _plain(value) -> str:
    """0.004200 as "0.0042" (never in exponent notation) for an input's value."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _is_owner(request) -> bool:
    return request.membership.role == Membership.OWNER


def _owner_or_404(request):
    if not _is_owner(request):
        raise Http404("Only a team owner can change this.")


@team_required
def budgets(request):
    team = request.team
    owner = _is_owner(request)
    if request.method == "POST":
        _owner_or_404(request)
        form = BudgetForm(request.POST, team=team)
        if form.is_valid():
            budget = form.save(by=request.user)
            messages.success(request, f"{budget.name} set: {budget.amount} {budget.unit_obj.label}.")
            return redirect("budgets")
    else:
        form = BudgetForm(team=team) if owner else None
    qs = Budget.objects.filter(team=team).select_related("member", "api_token")
    if not owner:
        qs = qs.filter(Q(member__isnull=True) | Q(member=request.user))
    prices = Prices(team)
    rows = [budget_rules.status(b, prices, team=team) for b in qs]
    return render(request, "ledger/budgets.html", {
        "rows": rows, "form": form, "is_owner": owner, "zone": team.time_zone,
    }, status=400 if form is not None and form.is_bound else 200)


@require_POST
@team_required
def delete_budget(request, uuid):
    _owner_or_404(request)
    budget = get_object_or_404(Budget, team=request.team, uuid=uuid)
    name = budget.name
    budget.delete()
    messages.success(request, f"{name} removed.")
    return redirect("budgets")


@team_required
def prices(request):
    team = request.team
    owner = _is_owner(request)
    errors = {}
    if request.method == "POST":
        _owner_or_404(request)
        form = PriceForm(request.POST)
        if form.is_valid():
            provider, price = form.cleaned_data["provider"], form.cleaned_data["price"]
            label = registry.get(provider).label
            if price is None or "clear" in request.POST:
                CreditPrice.objects.filter(team=team, provider=provider).delete()
                messages.success(request, f"{label}: the team's own price is cleared.")
            else:
                CreditPrice.objects.update_or_create(team=team, provider=provider, defaults={
                    "price": price, "updated_by": request.user, "updated_at": timezone.now()})
                messages.success(request, f"{label}: {Prices(team).money.format(price)} per credit for this team.")
            return redirect("prices")
        errors[request.POST.get("provider", "")] = form
    current = Prices(team)
    rows = []
    for key, cls in registry.adapter_classes().items():
        price = current.price(key)
        rows.append({
            "key": key, "label": cls.label, "unit": cls.unit, "price": price,
            "price_text": current.money.format(price.per_unit) if price.is_set else "",
            "form": errors.get(key) or (PriceForm(initial={"provider": key, "price": _plain(price.per_unit)
                                                           if price.source == "team" else None})
                                        if owner and not cls.unit.is_currency else None),
        })
    return render(request, "ledger/prices.html", {
        "rows": rows, "money": current.money, "is_owner": owner,
    }, status=400 if errors else 200)


@team_required
def adjustments(request):
    """Owners record signed corrections (a provider's refund, a charge it
    made outside the playground); everyone in the team sees the list."""
    from .forms import AdjustmentForm
    from .models import Entry

    team = request.team
    owner = _is_owner(request)
    form = None
    if request.method == "POST":
        _owner_or_404(request)
        form = AdjustmentForm(request.POST, team=team)
        if form.is_valid():
            entry = form.save(by=request.user)
            messages.success(request, f"Adjustment recorded: {entry.unit_obj.format(entry.amount)}.")
            return redirect("adjustments")
    elif owner:
        form = AdjustmentForm(team=team)
    rows = Entry.objects.filter(team=team, kind=Entry.ADJUSTMENT).select_related("created_by")
    if not owner:
        rows = rows.filter(Q(user=request.user) | Q(user__isnull=True))
    return render(request, "ledger/adjustments.html", {"form": form, "rows": rows[:200], "is_owner": owner},
                  status=400 if form is not None and form.is_bound else 200)
