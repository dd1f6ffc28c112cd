"""The comparison pages. A comparison is looked up through visible_to (own
+ shared with the team) or owned_by (what its owner alone may change):
anything else is a 404."""

from __future__ import annotations

from datetime import datetime, time as dtime
from decimal import Decimal
import hashlib
import statistics

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.generations.models import Favorite, Generation, InputImage
from playground.ledger.budgets import BudgetExceeded
from playground.ledger.prices import Prices
from playground.lib.units import Amount, Totals
from playground.providers import registry
from playground.providers.base import ProviderError

from . import fanout, leaderboard
from .forms import UPLOAD_PLACEHOLDER, CompareForm, EditForm
from .models import Cell, Comparison, Row, Vote

LIST_MAX = 100
POLL_STOP = 286  # htmx: stop polling


# --- access helpers -------------------------------------------------------------


def _comparison_or_404(request, uuid):
    return get_object_or_404(Comparison.objects.visible_to(request.user, request.team).select_related("owner"),
                             uuid=uuid)


def _own_comparison_or_404(request, uuid):
    return get_object_or_404(Comparison.objects.owned_by(request.user, request.team), uuid=uuid)


def _row_or_404(request, uuid):
    return get_object_or_404(Row.objects.visible_to(request.user, request.team).select_related("comparison"),
                             uuid=uuid)


def _own_cell_or_404(request, uuid):
    return get_object_or_404(Cell.objects.owned_by(request.user, request.team).select_related(
        "row__comparison__team", "row__comparison__owner", "generation"), uuid=uuid)


# --- list and new -------------------------------------------------------------------


@team_required
def comparisons(request):
    qs = Comparison.objects.visible_to(request.user, request.team).select_related("owner").prefetch_related("rows")
    return render(request, "compare/list.html", {"comparisons": qs[:LIST_MAX]})


def _input_images(request):
    return InputImage.objects.visible_to(request.user, request.team)[:20]


@team_required
def new(request):
    images = _input_images(request)
    form = CompareForm(request.POST or None, request.FILES or None, input_images=images)
    quote = refusal = None
    if request.method == "POST" and form.is_valid():
        plan = form.cleaned_data["plan"]
        if request.POST.get("action") == "quote":
            quote = plan.quote(request.team, request.user)
        else:
            try:
                if form.cleaned_data.get("upload") and plan.image == UPLOAD_PLACEHOLDER:
                    stored = InputImage.from_checked(team=request.team, owner=request.user,
                                                     img=form.cleaned_data["upload"])
                    plan.image = str(stored.uuid)
                    plan.build()
                comp = fanout.create(plan, team=request.team, owner=request.user, name=form.cleaned_data["name"],
                                     visibility=form.cleaned_data["visibility"], blind=form.cleaned_data["blind"])
            except fanout.GridRefused as e:
                refusal = e
            except ProviderError as e:
                form.add_error(None, e.message)
            else:
                return redirect("compare_grid", comp.uuid)
        if refusal is None and quote is None and not form.errors:
            quote = plan.quote(request.team, request.user)
    if request.htmx and request.POST.get("action") == "quote":
        return render(request, "compare/new.html#quote", {"quote": quote, "form": form})
    status = 400 if form.is_bound and (form.errors or refusal) else 200
    return render(request, "compare/new.html", {"form": form, "quote": quote, "refusal": refusal,
                                                "with_image": dict(fanout.choices(True)),
                                                "without_image": dict(fanout.choices(False))}, status=status)


# --- the grid -------------------------------------------------------------------------


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


def grid_context(request, comp: Comparison) -> dict:
    rows = list(comp.rows.prefetch_related(
        Prefetch("cells", queryset=Cell.objects.select_related("generation").prefetch_related("generation__images")),
    ))
    my_votes = {v.row_id: v for v in Vote.objects.filter(row__comparison=comp, user=request.user)}
    counts: dict[int, dict] = {}
    for v in Vote.objects.filter(row__comparison=comp):
        key = v.cell_id if v.choice == "cell" else v.choice
        counts.setdefault(v.row_id, {}).setdefault(key, 0)
        counts[v.row_id][key] += 1
    prices = Prices(comp.team)
    starred = set(Favorite.objects.filter(user=request.user, generation__compare_cells__row__comparison=comp)
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
            cells.sort(key=lambda c: hashlib.sha256(f"{row.uuid}:{request.user.pk}:{c['cell'].column}".encode())
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
            "is_owner": comp.owner_id == request.user.id}


@team_required
def grid(request, uuid):
    comp = _comparison_or_404(request, uuid)
    ctx = grid_context(request, comp)
    ctx["edit_form"] = EditForm(initial={"name": comp.name, "visibility": comp.visibility})
    return render(request, "compare/grid.html", ctx)


@team_required
def cells(request, uuid):
    """The grid's cells only: the one polling request of the page. 286
    (htmx: stop polling) once every cell is final."""
    comp = _comparison_or_404(request, uuid)
    ctx = grid_context(request, comp)
    response = render(request, "compare/grid.html#cells", ctx)
    if ctx["all_final"]:
        response.status_code = POLL_STOP
    return response


@require_POST
@team_required
def retry_cell(request, uuid):
    cell = _own_cell_or_404(request, uuid)
    comp = cell.row.comparison
    gen = cell.generation
    if gen is not None and gen.status not in (Generation.FAILED, Generation.CANCELED):
        messages.error(request, "Only a failed cell can be retried.")
        return redirect("compare_grid", comp.uuid)
    try:
        fanout.retry(cell)
    except BudgetExceeded as e:
        messages.error(request, e.message)
    except ProviderError as e:
        messages.error(request, e.message)
    return redirect("compare_grid", comp.uuid)


@require_POST
@team_required
def vote(request, uuid):
    row = _row_or_404(request, uuid)
    choice = request.POST.get("choice", "")
    cell = None
    if choice in (Vote.TIE, Vote.ALL_BAD):
        kind = choice
    else:
        cell = row.cells.filter(uuid=choice).first() if _is_uuid(choice) else None
        if cell is None:
            messages.error(request, "Pick a cell, tie or all bad.")
            return redirect("compare_grid", row.comparison.uuid)
        kind = "cell"
    Vote.objects.update_or_create(row=row, user=request.user,
                                  defaults={"cell": cell, "choice": kind, "created": timezone.now()})
    return redirect(f"{_grid_url(row.comparison)}#row-{row.index + 1}")


def _grid_url(comp):
    from django.urls import reverse

    return reverse("compare_grid", args=[comp.uuid])


def _is_uuid(value: str) -> bool:
    import uuid as uuid_mod

    try:
        uuid_mod.UUID(value)
    except ValueError:
        return False
    return True


@require_POST
@team_required
def edit(request, uuid):
    comp = _own_comparison_or_404(request, uuid)
    form = EditForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for e in errors:
                messages.error(request, e)
        return redirect("compare_grid", comp.uuid)
    comp.name, comp.visibility = form.cleaned_data["name"], form.cleaned_data["visibility"]
    comp.save(update_fields=["name", "visibility"])
    # The cells' images follow the comparison (a shared grid shows its images to the team).
    Generation.objects.owned_by(request.user, request.team).filter(
        compare_cells__row__comparison=comp).update(visibility=comp.visibility)
    messages.success(request, "Saved.")
    return redirect("compare_grid", comp.uuid)


@require_POST
@team_required
def rerun(request, uuid):
    old = _comparison_or_404(request, uuid)
    try:
        plan = fanout.plan_from(old)
        comp = fanout.create(plan, team=request.team, owner=request.user, name=old.name[:120],
                             visibility=old.visibility, blind=old.blind, rerun_of=old)
    except fanout.GridRefused as e:
        messages.error(request, f"Over budget: nothing was created. These cells could not run: {', '.join(e.cells)}.")
        return redirect("compare_grid", old.uuid)
    except ProviderError as e:
        messages.error(request, e.message)
        return redirect("compare_grid", old.uuid)
    return redirect("compare_grid", comp.uuid)


# --- leaderboard ----------------------------------------------------------------------------


def _date(value: str):
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except (TypeError, ValueError):
        return None


@team_required
def leaderboard_page(request):
    visible = Comparison.objects.visible_to(request.user, request.team)
    votes = Vote.objects.filter(row__comparison__in=visible).select_related("cell", "user", "row").prefetch_related(
        "row__cells")
    start, end = _date(request.GET.get("from", "")), _date(request.GET.get("to", ""))
    tz = timezone.get_current_timezone()
    if start:
        votes = votes.filter(created__gte=datetime.combine(start, dtime.min, tzinfo=tz))
    if end:
        votes = votes.filter(created__lte=datetime.combine(end, dtime.max, tzinfo=tz))
    members = get_user_model().objects.filter(memberships__team=request.team).order_by("username")
    member = request.GET.get("member", "")[:150]
    if member:
        votes = votes.filter(user__username=member)
    board = leaderboard.build(list(votes))
    ranked = board.ranked()
    for s in ranked:
        s.label = fanout.label(*s.key.split(":", 1))
    return render(request, "compare/leaderboard.html", {
        "ranked": ranked, "members": members, "member": member,
        "start": request.GET.get("from", "")[:10], "end": request.GET.get("to", "")[:10],
        "k": leaderboard.K, "start_rating": leaderboard.START})
