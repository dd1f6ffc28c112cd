from django.utils.functional import SimpleLazyObject

from .models import Membership

SESSION_KEY = "team_uuid"


def _membership(request):
    if not request.user.is_authenticated:
        return None
    qs = Membership.objects.filter(user=request.user).select_related("team").order_by("created_at")
    wanted = request.session.get(SESSION_KEY)
    m = qs.filter(team__uuid=wanted).first() if wanted else None
    return m or qs.first()


def current_team(get_response):
    """request.membership and request.team: the team the user works in now."""

    def middleware(request):
        request.membership = SimpleLazyObject(lambda: _membership(request))
        request.team = SimpleLazyObject(lambda: request.membership.team if request.membership else None)
        return get_response(request)

    return middleware
