"""The Account page: who you are, your teams, and your personal API tokens
in the current team (make one, see it once, revoke it, give it a budget).
A team owner also sees every token in the team and may revoke any of them
(someone left, a token leaked).

It lives in the ledger app rather than accounts because a token's budget
is a ledger budget, and accounts sits below the ledger
(docs/architecture.md).

The secret of a new token is never stored, not even in the session: the
answer to the POST that makes it shows it, once, on a page that is not
cached; only its hash is kept. Each render of the form carries a one-time
nonce, and the session remembers which token a nonce made (its uuid, not
its secret), so a resubmitted POST (a reload, a double click) makes no
second token and says the secret was already shown."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required
from playground.accounts.forms import ApiTokenForm
from playground.accounts.models import ApiToken, Membership

from . import budgets as budget_rules
from .forms import TokenBudgetForm
from .models import Budget
from .prices import Prices

MADE_BY_NONCE = "api_token_nonces"  # nonce -> uuid of the token it made (never the secret)
NONCES_KEPT = 20


def _is_owner(request) -> bool:
    return request.membership.role == Membership.OWNER


def _label(token) -> str:
    return f"API token '{token.name}' (...{token.last4})"


def _ids(token) -> str:
    """Element ids of one token's budget form (one per row, none shared)."""
    return f"id_budget_{token.uuid.hex[:12]}_%s"


def _page(request, *, form=None, budget_form=None, bad_budget=None, new=None, status=200):
    """The page; bad_budget: (token uuid, bound form) to show a budget's errors in its row."""
    team = request.team
    prices = Prices(team)
    mine = list(ApiToken.objects.filter(user=request.user, team=team))
    budgets = {b.api_token_id: budget_rules.status(b, prices, team=team)
               for b in Budget.objects.filter(api_token__in=mine).select_related("api_token")}
    rows = []
    for token in mine:
        st = budgets.get(token.pk)
        if bad_budget and bad_budget[0] == token.uuid:
            bform = bad_budget[1]
        elif st is not None:
            b = st.budget
            bform = TokenBudgetForm(initial={"amount": b.amount.normalize(), "period": b.period,
                                             "counted_in": b.provider or "money"}, required=True, auto_id=_ids(token))
        else:
            bform = TokenBudgetForm(required=True, auto_id=_ids(token))
        rows.append({"token": token, "budget": st, "budget_form": bform,
                     "models": ", ".join(token.allowed_models) if token.allowed_models else "all"})
    is_owner = _is_owner(request)
    team_tokens = (ApiToken.objects.filter(team=team).select_related("user").order_by("user__username", "-created_at")
                   if is_owner else None)
    return render(request, "accounts/account.html", {
        "memberships": Membership.objects.filter(user=request.user).select_related("team").order_by("team__name"),
        "rows": rows, "new": new, "is_owner": is_owner, "team_tokens": team_tokens,
        "form": form or ApiTokenForm(zone=team.zone),
        "budget_form": budget_form or TokenBudgetForm(prefix="budget"),
        "default_rate": getattr(settings, "API_TOKEN_RATE_PER_MINUTE", None),
        "nonce": uuid.uuid4().hex,
    }, status=status)


@never_cache
@team_required
def account(request):
    if request.method == "POST":
        nonce = request.POST.get("nonce", "")[:64]
        made = request.session.get(MADE_BY_NONCE, {})
        if nonce and nonce in made:  # the same form again: the token exists, its secret was shown
            token = ApiToken.objects.filter(user=request.user, uuid=made[nonce]).first()
            if token is not None:
                return _page(request, new={"token": token, "secret": None})
        form = ApiTokenForm(request.POST, zone=request.team.zone)
        budget_form = TokenBudgetForm(request.POST, prefix="budget")
        valid = form.is_valid()
        if budget_form.is_valid() and valid:
            with transaction.atomic():
                token, secret = ApiToken.issue(request.user, request.team, form.cleaned_data["name"],
                                               **form.token_fields())
                budget_form.save(token, by=request.user)
            if nonce:
                made = dict(list(made.items())[-(NONCES_KEPT - 1):])
                made[nonce] = str(token.uuid)
                request.session[MADE_BY_NONCE] = made
            return _page(request, new={"token": token, "secret": secret})
        return _page(request, form=form, budget_form=budget_form, status=400)
    return _page(request)


@require_POST
@team_required
def revoke_token(request, uuid):
    """Your own token (in any of your teams), or as an owner any token of
    the current team; anything else is a 404."""
    scope = Q(user=request.user)
    if _is_owner(request):
        scope |= Q(team=request.team)
    token = get_object_or_404(ApiToken.objects.filter(scope).select_related("user"), uuid=uuid)
    whose = "" if token.user_id == request.user.pk else f" of {token.user.get_username()}"
    if token.revoke():
        messages.success(request, f"{_label(token)}{whose} revoked: requests with it are refused from now on.")
    else:
        messages.info(request, f"{_label(token)}{whose} was already revoked.")
    return redirect(reverse("account") + ("#tokens" if not whose else "#team-tokens"))


@require_POST
@team_required
def token_budget(request, uuid):
    """Set (replace) or remove the budget of one of your tokens."""
    token = get_object_or_404(ApiToken, uuid=uuid, user=request.user, team=request.team)
    back = redirect(reverse("account") + f"#token-{token.uuid}")
    if "remove" in request.POST:
        if Budget.objects.filter(api_token=token).delete()[0]:
            messages.success(request, f"{_label(token)}: its budget is removed.")
        return back
    form = TokenBudgetForm(request.POST, required=True, auto_id=_ids(token))
    if not form.is_valid():
        return _page(request, bad_budget=(token.uuid, form), status=400)
    budget = form.save(token, by=request.user)
    messages.success(request, f"{budget.name}: {budget.unit_obj.format(budget.amount)}.")
    return back
