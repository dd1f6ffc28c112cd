"""Who may open a page: a signed-in user with a current team, or its owner."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from .models import Membership


def team_required(view):
    """login_required, plus a current team on request.team (a 404-free way
    to tell a user without a team what to do)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.membership:
            return render(request, "accounts/no_team.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def owner_required(view):
    @wraps(view)
    @team_required
    def wrapper(request, *args, **kwargs):
        if request.membership.role != Membership.OWNER:
            messages.error(request, "Only a team owner can change this.")
            return redirect("team")
        return view(request, *args, **kwargs)

    return wrapper
