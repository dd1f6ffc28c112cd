"""Which rows a user may see while working in a team: the one rule, written
once as a queryset method, visible_to(user, team). Today: their own rows in
that team, plus their teammates' rows that are shared with the team (for
models that have a shared path: generations and their images). Ledger
entries have none: a member sees only their own lines.

A model's queryset names the path from its rows to the team and to the
owner; views and the ledger ask `Model.objects.visible_to(request.user,
request.team)` and never spell the filter out."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

SHARED = "team"  # the value of a shared row's visibility field


class VisibleQuerySet(models.QuerySet):
    team_field = "team"
    owner_field = "owner"
    shared_field = None  # path to the row's visibility ("private" or "team"), if it has one

    def visible_to(self, user, team):
        """What this user may see in this team: their own rows, and rows
        shared with the team."""
        if team is None or user is None or not user.is_authenticated:
            return self.none()
        mine_or_shared = Q(**{self.owner_field: user})
        if self.shared_field:
            mine_or_shared |= Q(**{self.shared_field: SHARED})
        return self.filter(Q(**{self.team_field: team}) & mine_or_shared)

    def owned_by(self, user, team):
        """Only this user's own rows in this team (what they may change)."""
        if team is None or user is None or not user.is_authenticated:
            return self.none()
        return self.filter(**{self.team_field: team, self.owner_field: user})


def visible_queryset(team_field: str = "team", owner_field: str = "owner",
                     shared_field: str | None = None) -> type[VisibleQuerySet]:
    """A VisibleQuerySet for rows that reach their team, owner and (if
    shareable) visibility by these paths (e.g. "generation__team",
    "generation__owner", "generation__visibility")."""
    return type("VisibleQuerySet", (VisibleQuerySet,), {"team_field": team_field, "owner_field": owner_field,
                                                        "shared_field": shared_field, "__module__": __name__})
