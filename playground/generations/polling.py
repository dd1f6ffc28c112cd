"""Job-card polling: one request per page for all its active cards.

A page (the playground's job column, a job's detail page) holds one poller,
<div id="job-poll" hx-get="/jobs/poll" hx-trigger="every 1s">, while it shows
an active card. static/jobcards.js adds to its request the uuid of each active
card with its version stamp (the job's updated_at in microseconds, on the card
as data-stamp), and on the playground the creation stamp of the newest card
(for jobs of this user started elsewhere):

    GET /jobs/poll?c=<uuid>:<stamp>&c=...&since=<created stamp>

The answer carries only what changed: each changed card with
hx-swap-oob="true" (htmx swaps it in place of the card with its id), and new
cards in <div id="jobs" hx-swap-oob="afterbegin"> (htmx puts them on top of
the job column). Nothing changed: 204, after one query reading (uuid, stamp)
of the visible ids, no template rendered, no session written. When no card
of the page is active any more (all finished, or none the user may see),
the answer is 286 (HttpResponseStopPolling), with whatever changed: htmx
stops the poller. A job started from the form swaps in a new poller; the
form's request and the poll's wait for each other (hx-sync="#job-poll:queue"
on the form), so a job started on the page never also comes back as new.
Ids the user may not see (another team's, a teammate's private job) are
ignored, as if unknown. A job finished on its own detail page answers
HX-Refresh (HttpResponseClientRefresh): the page shows a finished job's
images above its card.

The countdown of a job waiting out a rate limit ("retrying in N s") and the
elapsed time tick in the browser (data-due-in, data-elapsed), so an
unchanged card needs no request to stay current."""

from __future__ import annotations

import uuid as uuid_mod
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import connection
from django.http import HttpResponse
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from playground.accounts.access import team_required
from playground.accounts.visibility import SHARED

from .models import Generation
from .views_detail import GENERATION, card_context, on_detail_page
from .views_playground import PLAYGROUND
from .views_shared import render_page

EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_CARDS = 60  # ids read per request; a page shows far fewer active cards
RECENT_JOBS = 12  # new cards sent at most (the playground's column shows 12)


def stamp(dt) -> int:
    """A datetime as whole microseconds since the epoch (exact, no float)."""
    if dt is None:
        return 0
    return (dt - EPOCH) // ONE_MICROSECOND


def from_stamp(value: int):
    return EPOCH + timedelta(microseconds=value)


def _wanted(values) -> dict:
    """{uuid: stamp} of the page's cards; malformed entries are dropped."""
    out = {}
    for raw in values[:MAX_CARDS]:
        ref, _, version = raw.partition(":")
        try:
            out[uuid_mod.UUID(ref)] = int(version)
        except ValueError:
            continue
    return out


def _since(request):
    raw = request.GET.get("since")
    if raw is None:
        return None
    try:
        return from_stamp(int(raw))
    except (ValueError, OverflowError):
        return None


def _versions(user, team, ids, since):
    """The poll's one query: (uuid, updated_at, created_at) of the visible
    ids, and of this user's own jobs created after since (_version_rows)."""
    return [(ref, updated, created) for _, ref, updated, created in _version_rows(user, team, ids, since)]


def _version_rows(user, team, ids, since):
    """(id, uuid, updated_at, created_at) of the visible ids, and of this
    user's own jobs created after since.

    Plain SQL: the ORM spent ~1 ms of CPU building and compiling this query
    on every poll, three times the rest of an unchanged poll's own work
    (docs/benchmarks.md, poll_cpu_vs_login). It states the rule of
    VisibleQuerySet.visible_to (own rows, and rows shared with the team);
    tests/accounts/test_plain_sql_reads.py holds the two to the same answers.

    Its plan holds at any team size, with or without planner statistics
    (tests/plans): one SELECT per part, so that each has its own index. The
    cards' ids are read by the unique uuid index, the team written +team_id
    so that no team index is ever picked for them (SQLite, with no
    statistics, guesses that a team holds 10 rows and read a team of
    100,000 through it: issue 26); the new jobs by gen_team_owner_recent.
    UNION drops a job that both parts find."""
    if user is None or team is None or not user.is_authenticated or not (ids or since is not None):
        return []
    meta, quote = Generation._meta, connection.ops.quote_name
    col = {name: quote(meta.get_field(name).column) for name in ("id", "uuid", "updated_at", "created_at", "team",
                                                                 "owner", "visibility")}
    uuid_field, created_field = meta.get_field("uuid"), meta.get_field("created_at")
    select = f"SELECT {col['id']}, {col['uuid']}, {col['updated_at']}, {col['created_at']} FROM {quote(meta.db_table)}"
    parts, params = [], []
    if ids:
        marks = ", ".join(["%s"] * len(ids))
        parts.append(f"{select} WHERE {col['uuid']} IN ({marks}) AND +{col['team']} = %s "
                     f"AND ({col['owner']} = %s OR {col['visibility']} = %s)")
        params += [*(uuid_field.get_db_prep_value(i, connection) for i in ids), team.pk, user.pk, SHARED]
    if since is not None:
        parts.append(f"{select} WHERE {col['team']} = %s AND {col['owner']} = %s AND {col['created_at']} > %s")
        params += [team.pk, user.pk, created_field.get_db_prep_value(since, connection)]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ".join(parts), params)
        rows = cursor.fetchall()
    return [(pk, _uuid(ref), _utc(updated), _utc(created)) for pk, ref, updated, created in rows]


def _uuid(value):
    return value if isinstance(value, uuid_mod.UUID) else uuid_mod.UUID(value)  # SQLite: 32 hex digits


def _utc(value):
    """A datetime column as read by the cursor: an aware datetime, or (SQLite,
    which stores UTC without a zone) its ISO text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)


def _newest_first(gen):
    return -stamp(gen.created_at), -gen.pk


@team_required
def poll(request):
    wanted = _wanted(request.GET.getlist("c"))
    since = _since(request)
    # One query: (uuid, stamp) of the visible ids, and (on the playground)
    # of this user's jobs created after the newest card shown.
    changed, new, waiting = [], [], False
    if wanted or since is not None:
        for pk, ref, updated_at, created_at in _version_rows(request.user, request.team, list(wanted), since):
            if ref not in wanted:
                new.append((created_at, pk))
            elif stamp(updated_at) != wanted[ref]:
                changed.append(pk)
            else:
                waiting = True  # an active card, unchanged: still polled
    if not changed and not new:
        # Nothing changed; no card the user may see left to ask about: stop.
        return HttpResponse(status=204) if waiting else HttpResponseStopPolling()

    parts, active = [], waiting
    if changed:
        # By id (found above), in no order (sorted here): with an ORDER BY
        # SQLite may walk the whole team in that order when it has no statistics.
        gens = sorted(Generation.objects.visible_to(request.user, request.team).filter(pk__in=changed).order_by()
                      .select_related("team", "owner").prefetch_related("images"), key=_newest_first)
        for gen in gens:
            if not gen.is_active and on_detail_page(request, gen):
                # The detail page shows a finished job's images above its card: reload it.
                return HttpResponseClientRefresh()
        for gen in gens:
            parts.append(render_page(request, GENERATION, {**card_context(request, gen), "oob": True}, "card").content)
            active = active or gen.is_active
    if new:
        newest = [pk for _, pk in sorted(new, reverse=True)[:RECENT_JOBS]]
        cards = sorted(Generation.objects.owned_by(request.user, request.team).filter(pk__in=newest).order_by()
                       .prefetch_related("images"), key=_newest_first)
        if cards:
            parts.append(render_page(request, PLAYGROUND, {"jobs": cards}, "poll-new-jobs").content)
            active = active or any(gen.is_active for gen in cards)
    body = b"".join(parts)
    if not active:
        return HttpResponseStopPolling(body)
    return HttpResponse(body) if body else HttpResponse(status=204)
