"""Team views beyond the basics in views.py: creating a team, invite links,
unlocking a member's login, and testing a provider key."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from playground.providers import registry
from playground.providers.base import ProviderError

from . import login_throttle
from .forms import InviteForm, NewTeamForm
from .middleware import SESSION_KEY
from .models import Endpoint, Invite, Membership, Team
from .views import owner_required

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def team_page_context(request, creds) -> dict:
    """What the Team page shows besides providers and members."""
    is_owner = request.membership.role == Membership.OWNER
    ctx = {"new_team_form": NewTeamForm()}
    if is_owner:
        members = request.team.memberships.values_list("user__username", flat=True)
        ctx.update({
            "invite_form": InviteForm(),
            "invites": [(inv, request.build_absolute_uri(inv.get_absolute_url()))
                        for inv in Invite.pending(request.team).select_related("created_by")],
            "invite_days": settings.INVITE_EXPIRY_DAYS,
            "locked": login_throttle.locked_usernames(members),
        })
    return ctx


def credential_form(form, cred, provider):
    """Offer "remove" only when this team has a key stored, and say where
    requests go once it is removed."""
    if not (cred and cred.api_key_encrypted):
        del form.fields["remove"]
    elif settings.PROVIDER_ENV.get(provider, {}).get("api_key"):
        form.fields["remove"].label = "Remove the stored key (back to the instance-wide key)"
    return form


# --- creating a team ------------------------------------------------------------


@require_POST
@login_required
def create_team(request):
    """Any user can start a team; they become its owner and work in it."""
    form = NewTeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Team name: " + " ".join(form.errors.get("name", ["is not valid."])))
        return redirect("team")
    name = form.cleaned_data["name"]
    # A double click must not make two teams: the same name, just made by this user, is that team.
    recent = Membership.objects.filter(user=request.user, role=Membership.OWNER, team__name=name,
                                       team__created_at__gte=timezone.now() - timedelta(seconds=30)).first()
    if recent:
        team = recent.team
    else:
        with transaction.atomic():
            team = Team.objects.create(name=name)
            Membership.objects.create(team=team, user=request.user, role=Membership.OWNER)
    request.session[SESSION_KEY] = str(team.uuid)
    messages.success(request, f"Team {team.name} created. You are its owner: add provider keys and invite people here.")
    return redirect("team")


# --- invites ------------------------------------------------------------------------


@require_POST
@owner_required
def create_invite(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(reverse("team") + "#invites")
    Invite.objects.create(team=request.team, role=form.cleaned_data["role"], note=form.cleaned_data["note"],
                          created_by=request.user,
                          expires_at=timezone.now() + timedelta(days=settings.INVITE_EXPIRY_DAYS))
    messages.success(request, f"Invite link created. Copy it from the list of pending invites and send it: it works "
                              f"once, for {settings.INVITE_EXPIRY_DAYS} days.")
    return redirect(reverse("team") + "#invites")


@require_POST
@owner_required
def revoke_invite(request, uuid):
    deleted, _ = Invite.objects.filter(team=request.team, uuid=uuid, used_at__isnull=True).delete()
    if deleted:
        messages.success(request, "Invite revoked: the link no longer works.")
    else:
        messages.info(request, "That invite was already used or revoked.")
    return redirect(reverse("team") + "#invites")


class _Taken(Exception):
    """The invite was used by someone else a moment ago: undo the sign-up."""


def invite(request, uuid):
    """An invite link: a visitor creates an account and joins; a logged-in
    user joins. Used, expired or revoked links say so."""
    inv = Invite.objects.select_related("team").filter(uuid=uuid).first()
    if inv is None:
        return render(request, "invite.html", {"state": "unknown"}, status=404)
    if inv.state != "pending":
        return render(request, "invite.html", {"state": inv.state, "invite": inv}, status=410)

    if request.user.is_authenticated:
        already = Membership.objects.filter(team=inv.team, user=request.user).first()
        if request.method == "POST":
            if already:
                request.session[SESSION_KEY] = str(inv.team.uuid)
                messages.info(request, f"You are already a member of {inv.team.name}; the invite is left for someone else.")
                return redirect("playground")
            try:
                with transaction.atomic():
                    if not inv.claim(request.user):
                        raise _Taken
                    Membership.objects.create(team=inv.team, user=request.user, role=inv.role)
            except _Taken:
                return render(request, "invite.html", {"state": "used", "invite": inv}, status=410)
            return _joined(request, inv)
        return render(request, "invite.html", {"state": "pending", "invite": inv, "already": already})

    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
                if not inv.claim(user):
                    raise _Taken
                Membership.objects.create(team=inv.team, user=user, role=inv.role)
        except _Taken:
            return render(request, "invite.html", {"state": "used", "invite": inv}, status=410)
        login(request, user, backend=MODEL_BACKEND)
        return _joined(request, inv)
    return render(request, "invite.html", {"state": "pending", "invite": inv, "form": form},
                  status=400 if form.is_bound else 200)


def _joined(request, inv):
    request.session[SESSION_KEY] = str(inv.team.uuid)
    messages.success(request, f"Welcome to {inv.team.name}: you are a{'n' if inv.role == Membership.OWNER else ''} "
                              f"{inv.role} of the team.")
    return redirect("playground")


# --- login lockout ------------------------------------------------------------------


@require_POST
@owner_required
def unlock_member(request, username):
    """An owner lifts a member's login lock (members of this team only)."""
    m = get_object_or_404(Membership, team=request.team, user__username=username)
    login_throttle.unlock_user(m.user.get_username())
    messages.success(request, f"{m.user.username} can log in again.")
    return redirect("team")


# --- testing a provider key -------------------------------------------------------------


@require_POST
@owner_required
def test_key(request, provider):
    """Ask the provider, with a call that costs nothing, whether the key in
    use (the team's, the instance's or the sandbox's) is accepted."""
    from django.http import Http404
    import httpx

    from .crypto import CredentialError

    cls = registry.adapter_classes().get(provider)
    if cls is None:
        raise Http404("Unknown provider")
    back = redirect(reverse("team") + f"#provider-{provider}")
    if not cls.can_check_key:
        messages.info(request, f"{cls.label} has no free call to test a key with: the first job will tell whether "
                               "the key works.")
        return back
    try:
        endpoint = Endpoint.resolve(request.team, provider)
    except CredentialError:
        messages.error(request, f"{cls.label}: the stored key cannot be decrypted; enter it again.")
        return back
    which = {"team": "this team's key", "instance": "the instance-wide key", "sandbox": "the sandbox key"}[endpoint.source]
    adapter = None
    try:
        endpoint.check_base_url()
        adapter = endpoint.adapter(client=httpx.Client(timeout=httpx.Timeout(10.0), follow_redirects=False))
        accepted = adapter.key_check()
    except ProviderError as e:
        e = endpoint.scrubbed(e)
        messages.error(request, f"{cls.label}: could not test {which}: {e.message}")
        return back
    finally:
        if adapter is not None:
            adapter.client.close()
    if accepted:
        messages.success(request, f"{cls.label}: {which} works (the provider accepted it).")
    else:
        messages.error(request, f"{cls.label}: {which} was rejected by the provider. Check it and save it again.")
    return back
