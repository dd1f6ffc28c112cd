"""The comparison pages. A comparison is looked up through visible_to (own
+ shared with the team) or owned_by (what its owner alone may change):
anything else is a 404."""

from __future__ import annotations

from datetime import datetime, time as dtime

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.generations.models import Generation, InputImage
from playground.ledger.budgets import BudgetExceeded
from playground.providers.errors import ProviderError

from . import fanout, leaderboard
from .forms import UPLOAD_PLACEHOLDER, CompareForm, EditForm
from .grid import grid_context
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
            token = form.cleaned_data.get("client_token")
            done = Comparison.objects.owned_by(request.user, request.team).filter(
                client_token=token).first() if token else None
            if done is not None:  # the same form again (a double click, a resent POST)
                return redirect("compare_grid", done.uuid)
            try:
                if form.cleaned_data.get("upload") and plan.image == UPLOAD_PLACEHOLDER:
                    plan.use_upload(form.cleaned_data["upload"], team=request.team, by=request.user)
                comp = fanout.create(plan, team=request.team, owner=request.user, name=form.cleaned_data["name"],
                                     visibility=form.cleaned_data["visibility"], blind=form.cleaned_data["blind"],
                                     client_token=form.cleaned_data.get("client_token"))
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


@team_required
def grid(request, uuid):
    comp = _comparison_or_404(request, uuid)
    ctx = grid_context(request.user, comp)
    ctx["edit_form"] = EditForm(initial={"name": comp.name, "visibility": comp.visibility})
    return render(request, "compare/grid.html", ctx)


@team_required
def cells(request, uuid):
    """The grid's cells only: the one polling request of the page. 286
    (htmx: stop polling) once every cell is final."""
    comp = _comparison_or_404(request, uuid)
    ctx = grid_context(request.user, comp)
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
    Vote.cast(row, request.user, kind, cell)
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
