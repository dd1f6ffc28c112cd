import uuid

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware
from django.utils.functional import SimpleLazyObject

from .models import Membership

SESSION_KEY = "team_uuid"


def _first_membership(user, team_uuid):
    qs = Membership.objects.filter(user=user).select_related("team").order_by("created_at")
    if team_uuid is not None:
        qs = qs.filter(team__uuid=team_uuid)
    return qs.first()


def _membership(request):
    if not request.user.is_authenticated:
        return None
    wanted = request.session.get(SESSION_KEY)
    try:
        wanted = uuid.UUID(str(wanted)) if wanted else None
    except ValueError:
        wanted = None
    m = _first_membership(request.user, wanted) if wanted else None
    return m or _first_membership(request.user, None)


def _attach(request):
    request.membership = SimpleLazyObject(lambda: _membership(request))
    request.team = SimpleLazyObject(lambda: request.membership.team if request.membership else None)


@sync_and_async_middleware
def current_team(get_response):
    """request.membership and request.team: the team the user works in now
    (read when first used). Sync and async (Django's documented pattern), so
    that under ASGI it holds no thread while an async view waits."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            _attach(request)
            return await get_response(request)

    else:

        def middleware(request):
            _attach(request)
            return get_response(request)

    return middleware
