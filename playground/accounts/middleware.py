import uuid

from asgiref.sync import iscoroutinefunction
from django.db import connection
from django.utils.decorators import sync_and_async_middleware
from django.utils.functional import SimpleLazyObject

from .models import Membership, Team

SESSION_KEY = "team_uuid"


def _membership(request):
    """The user's membership in the team the session names, else in the
    team they joined first; its team attached. None: no team.

    Plain SQL (two short queries, each by an index): the ORM's query
    building cost ~0.5 ms of CPU on every page, twice where the session's
    team is gone, more than the rest of an unchanged job-card poll
    (docs/benchmarks.md, poll_cpu_vs_login)."""
    if not request.user.is_authenticated:
        return None
    wanted = request.session.get(SESSION_KEY)
    try:
        wanted = uuid.UUID(str(wanted)) if wanted else None
    except ValueError:
        wanted = None
    members, teams = connection.ops.quote_name(Membership._meta.db_table), connection.ops.quote_name(Team._meta.db_table)
    first = ""
    params = [request.user.pk]
    if wanted is not None:
        first = "(t.uuid = %s) DESC, "
        params.append(Team._meta.get_field("uuid").get_db_prep_value(wanted, connection))
    sql = (f"SELECT m.* FROM {members} m JOIN {teams} t ON t.id = m.team_id WHERE m.user_id = %s "
           f"ORDER BY {first}m.created_at, m.id LIMIT 1")
    membership = next(iter(Membership.objects.raw(sql, params)), None)
    if membership is not None:
        membership.team = next(iter(Team.objects.raw(f"SELECT * FROM {teams} WHERE id = %s", [membership.team_id])))
    return membership


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
