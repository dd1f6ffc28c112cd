"""The gallery (/generations/): the viewer's generations, or the team's
shared ones, newest first (filters and pages: gallery_filters.py), and the
per-item actions: favorite, share or unshare, delete."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from playground.accounts.access import team_required

from .gallery_filters import GalleryFilters, page_of, parse_cursor
from .models import Favorite, Generation

TEMPLATE = "generations/gallery.html"


@team_required
def gallery(request):
    form = GalleryFilters(request.GET)
    form.is_valid()  # the valid filters apply; the errors are shown
    cursor = None
    ref = request.GET.get("after", "")
    if ref:
        cursor = parse_cursor(ref[:64])
        if cursor is None:
            form.add_error(None, "That page link is not valid: showing the newest generations.")
    scope = form.value("scope") or "mine"
    members = _members(request) if scope == "team" else []
    if members and form.value("member") and form.value("member") not in members:
        form.add_error("member", f"Nobody called \"{form.value('member')}\" is in this team.")
    cards, after = page_of(request, form, cursor)
    context = {
        "form": form, "cards": cards, "scope": scope, "zone": request.team.zone,
        "older_url": f"{reverse('gallery')}?{form.query(after=after)}" if after else "",
        "here": _here(request), "query": form.query(), "deep": bool(cursor),
        "newest_url": f"{reverse('gallery')}?{form.query()}",
        "members": members,
    }
    if request.htmx and cursor:
        return render(request, f"{TEMPLATE}#page", context)
    return render(request, TEMPLATE, context)


def _here(request) -> str:
    """This page's address, for forms to come back to: for cards loaded by
    scrolling, the page the browser shows (not the fragment's URL)."""
    from urllib.parse import urlsplit

    if request.htmx and request.htmx.current_url:
        parts = urlsplit(request.htmx.current_url)
        if parts.path == reverse("gallery"):
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


def _members(request):
    return list(request.team.memberships.select_related("user").order_by("user__username")
                .values_list("user__username", flat=True))


# --- actions -----------------------------------------------------------------------


def _visible_or_404(request, uuid):
    return get_object_or_404(Generation.objects.visible_to(request.user, request.team).select_related("owner"),
                             uuid=uuid)


def _own_or_404(request, uuid):
    """What only the owner may change: a teammate's shared item is 404 here."""
    return get_object_or_404(Generation.objects.owned_by(request.user, request.team).select_related("owner"),
                             uuid=uuid)


def back(request, default):
    """Where a form posted without JS goes back to: its `next` when it is this site's."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@require_POST
@team_required
def toggle_favorite(request, uuid):
    gen = _visible_or_404(request, uuid)
    removed, _ = Favorite.objects.filter(user=request.user, generation=gen).delete()
    if not removed:
        Favorite.objects.get_or_create(user=request.user, generation=gen)
    gen.starred = not removed
    if request.htmx:
        return render(request, f"{TEMPLATE}#star", {"gen": gen, "here": back(request, "")})
    return redirect(back(request, reverse("gallery")))


@require_POST
@team_required
def set_visibility(request, uuid):
    gen = _own_or_404(request, uuid)
    value = request.POST.get("visibility", "")
    if value not in (Generation.SHARED, Generation.PRIVATE):
        if request.htmx:
            return HttpResponse("Visibility must be team or private.", status=400)
        messages.error(request, "Visibility must be \"team\" (shared) or \"private\".")
        return redirect(back(request, reverse("gallery")))
    Generation.objects.filter(pk=gen.pk).update(visibility=value)
    gen.visibility = value
    gen.mine = True
    if request.htmx:
        return render(request, f"{TEMPLATE}#share", {"gen": gen, "here": back(request, "")})
    messages.success(request, "Shared with the team." if value == Generation.SHARED else "Now private to you.")
    return redirect(back(request, reverse("gallery")))


@team_required
def delete_generation(request, uuid):
    gen = _own_or_404(request, uuid)
    if gen.is_active:
        messages.error(request, "This job is still running: cancel it or wait for it to finish, then delete it.")
        return redirect(gen.get_absolute_url())
    if request.method != "POST":
        return render(request, "generations/delete.html",
                      {"gen": gen, "image": gen.images.order_by("index").first(),
                       "back": back(request, reverse("gallery"))})
    files = []
    with transaction.atomic():
        # Read under a lock: a thumbnail made meanwhile (thumbnails.make) is
        # either among the files or finds its row gone and removes its file.
        for img in gen.images.select_for_update():
            files += [f for f in (img.file, img.thumbnail) if f]
        # Ledger entries keep their lines (Entry.generation is SET_NULL; the uuid stays).
        gen.delete()
    for f in files:
        transaction.on_commit(lambda f=f: _delete_file(f))
    messages.success(request, "Generation deleted. Its credit history stays on the Credits page.")
    target = back(request, reverse("gallery"))
    if target.startswith(gen.get_absolute_url()):
        target = reverse("gallery")
    return redirect(target)


def _delete_file(field):
    """Remove a deleted generation's file from storage (local or object
    storage); a failure leaves an orphan file, never an error page."""
    try:
        field.storage.delete(field.name)
    except Exception:  # OSError locally, botocore's ClientError on S3
        logging.getLogger("playground.jobs").warning("could not delete %s from storage", field.name, exc_info=True)
