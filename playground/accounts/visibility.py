"""Which rows a user may see while working in a team: the one rule, written
once as a queryset method, visible_to(user, team). Today: their own rows in
that team (team sharing will widen it here, in one place).

A model's queryset names the path from its rows to the team and to the
owner; views and the ledger ask `Model.objects.visible_to(request.user,
request.team)` and never spell the filter out."""

from __future__ import annotations

from django.db import models


class VisibleQuerySet(models.QuerySet):
    team_field = "team"
    owner_field = "owner"

    def visible_to(self, user, team):
        if team is None or user is None or not user.is_authenticated:
            return self.none()
        return self.filter(**{self.team_field: team, self.owner_field: user})


def visible_queryset(team_field: str = "team", owner_field: str = "owner") -> type[VisibleQuerySet]:
    """A VisibleQuerySet for rows that reach their team and owner by these
    paths (e.g. "generation__team", "generation__owner")."""
    return type("VisibleQuerySet", (VisibleQuerySet,), {"team_field": team_field, "owner_field": owner_field,
                                                        "__module__": __name__})
