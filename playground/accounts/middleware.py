import uuid

from django.utils.functional import SimpleLazyObject

from playground.lib.compiled import CompiledQuery

from .models import Membership

SESSION_KEY = "team_uuid"


def _first_membership_qs(user, team_uuid):
    qs = Membership.objects.filter(user=user).select_related("team").order_by("created_at")
    if team_uuid is not None:
        qs = qs.filter(team__uuid=team_uuid)
    return qs[:1]


# Every request asks this (polls too): its SQL is built once per shape.
_first_membership = CompiledQuery(_first_membership_qs)


def _membership(request):
    if not request.user.is_authenticated:
        return None
    wanted = request.session.get(SESSION_KEY)
    try:
        wanted = uuid.UUID(str(wanted)) if wanted else None
    except ValueError:
        wanted = None
    m = next(iter(_first_membership.run(user=request.user, team_uuid=wanted)), None) if wanted else None
    return m or next(iter(_first_membership.run(user=request.user, team_uuid=None)), None)


def current_team(get_response):
    """request.membership and request.team: the team the user works in now."""

    def middleware(request):
        request.membership = SimpleLazyObject(lambda: _membership(request))
        request.team = SimpleLazyObject(lambda: request.membership.team if request.membership else None)
        return get_response(request)

    return middleware
