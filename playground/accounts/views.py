"""The Team pages: members, provider keys and base URLs, team settings,
switching teams, creating a team, invite links, unlocking a member's login,
and testing a provider key."""

from __future__ import annotations

from functools import cache

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from playground.providers import registry
from playground.providers.errors import ProviderError

from playground.lib.crypto import CredentialError

from . import login_throttle
from .access import owner_required, team_required
from .forms import CredentialForm, InviteForm, MemberForm, NewTeamForm
from .middleware import SESSION_KEY
from .models import Endpoint, Invite, Membership, ProviderCredential, Team, endpoint_source
from .visibility import SHARED

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def team_page_context(request) -> dict:
    """Everything the Team page shows: providers (where requests go, the key
    form), members, and for an owner the invites and locked logins."""
    is_owner = request.membership.role == Membership.OWNER
    creds = {c.provider: c for c in ProviderCredential.objects.filter(team=request.team)}
    ctx = {
        "providers": [
            {"key": key, "adapter": cls, "cred": creds.get(key), "source": endpoint_source(request.team, key),
             "form": credential_form(CredentialForm(initial={"base_url": creds[key].base_url if key in creds else ""}),
                                     creds.get(key), key)}
            for key, cls in registry.adapter_classes().items()
        ],
        "members": request.team.memberships.select_related("user").order_by("user__username"),
        "member_form": MemberForm(), "is_owner": is_owner, "time_zones": time_zones() if is_owner else (), "new_team_form": NewTeamForm(),
    }
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
    # Another team's invite is a 404, like an unknown one (RELIABILITY 8).
    inv = get_object_or_404(Invite, team=request.team, uuid=uuid)
    deleted, _ = Invite.objects.filter(pk=inv.pk, used_at__isnull=True).delete()
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
        return render(request, "accounts/invite.html", {"state": "unknown"}, status=404)
    if inv.state != "pending":
        return render(request, "accounts/invite.html", {"state": inv.state, "invite": inv}, status=410)

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
                return render(request, "accounts/invite.html", {"state": "used", "invite": inv}, status=410)
            return _joined(request, inv)
        return render(request, "accounts/invite.html", {"state": "pending", "invite": inv, "already": already})

    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
                if not inv.claim(user):
                    raise _Taken
                Membership.objects.create(team=inv.team, user=user, role=inv.role)
        except _Taken:
            return render(request, "accounts/invite.html", {"state": "used", "invite": inv}, status=410)
        login(request, user, backend=MODEL_BACKEND)
        return _joined(request, inv)
    return render(request, "accounts/invite.html", {"state": "pending", "invite": inv, "form": form},
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
    import httpx


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
    try:
        endpoint.check_base_url()
        # The endpoint's own client: for a team-supplied base URL, the guarded
        # one that checks the address it connects to (no second lookup).
        accepted = endpoint.adapter(timeout=httpx.Timeout(10.0)).key_check()
    except ProviderError as e:
        e = endpoint.scrubbed(e)
        messages.error(request, f"{cls.label}: could not test {which}: {e.message}")
        return back
    if accepted:
        messages.success(request, f"{cls.label}: {which} works (the provider accepted it).")
    else:
        messages.error(request, f"{cls.label}: {which} was rejected by the provider. Check it and save it again.")
    return back


# --- team --------------------------------------------------------------------


@team_required
def team(request):
    return render(request, "accounts/team.html", team_page_context(request))


@require_POST
@team_required
def share_default(request):
    """The member's own default for new generations in the current team:
    shared with the team or private (each generation can be changed after)."""
    choice = request.POST.get("share_by_default", "")
    if choice not in (SHARED, "private"):
        messages.error(request, "New generations: choose shared with the team or private.")
        return redirect(reverse("team") + "#sharing")
    membership = request.membership
    membership.share_by_default = choice == SHARED
    membership.save(update_fields=["share_by_default"])
    messages.success(request, f"New generations in {request.team.name} will be "
                              f"{'shared with the team' if choice == SHARED else 'private'}. "
                              "You can still change it on the form and on each generation.")
    return redirect(reverse("team") + "#sharing")


@require_POST
@login_required
def switch_team(request):
    m = Membership.objects.filter(user=request.user, team__uuid=request.POST.get("team")).first()
    if m is None:
        raise Http404("No such team")
    request.session[SESSION_KEY] = str(m.team.uuid)
    messages.success(request, f"You are now working in {m.team.name}.")
    return redirect("playground")


@require_POST
@owner_required
def save_credential(request, provider):
    if provider not in registry.adapter_classes():
        raise Http404("Unknown provider")
    form = CredentialForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("team")
    base_url = form.cleaned_data["base_url"]
    if base_url:
        from playground.lib.net.addresses import EgressRefused
        from playground.lib.net.guard import check_base_url

        try:
            check_base_url(base_url)
        except EgressRefused as e:
            if not e.unresolved:
                messages.error(request, f"{registry.get(provider).label}: base URL refused: {e}")
                return redirect("team")
            messages.warning(request, f"{e} The base URL is saved and checked again at every call.")
    cred, _ = ProviderCredential.objects.get_or_create(team=request.team, provider=provider)
    if form.cleaned_data["remove"]:
        cred.delete()
        fallback = "the instance-wide key" if settings.PROVIDER_ENV.get(provider, {}).get("api_key") else "the sandbox"
        messages.success(request, f"{registry.get(provider).label}: key removed, {fallback} is used again.")
        return redirect("team")
    if form.cleaned_data["api_key"]:
        cred.set_key(form.cleaned_data["api_key"])
    cred.base_url = form.cleaned_data["base_url"]
    cred.updated_by = request.user
    cred.save()
    messages.success(request, f"{registry.get(provider).label}: settings saved.")
    return redirect("team")


@cache
def time_zones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


@require_POST
@owner_required
def team_settings(request):
    """Team name and the adult-content switch (off unless an owner enables it)."""
    team = request.team
    name = request.POST.get("name", "").strip()
    if name:
        team.name = name[:100]
    team.adult_content_enabled = request.POST.get("adult_content_enabled") == "on"
    zone = request.POST.get("time_zone")
    if zone is not None:
        if zone not in time_zones():
            messages.error(request, f"Unknown time zone {zone[:64]!r}: nothing was saved. Pick one from the list.")
            return redirect("team")
        team.time_zone = zone
    team.save(update_fields=["name", "adult_content_enabled", "time_zone"])
    messages.success(request, "Team settings saved." + (
        " Adult styles are now offered; subjects are always validated as adults (18-70)."
        if team.adult_content_enabled else ""))
    return redirect("team")


@require_POST
@owner_required
def add_member(request):
    form = MemberForm(request.POST)
    if form.is_valid():
        user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            messages.error(request, f"No user named {form.cleaned_data['username']!r}.")
        elif (form.cleaned_data["role"] != Membership.OWNER and request.team.role_of(user) == Membership.OWNER
              and request.team.memberships.filter(role=Membership.OWNER).count() == 1):
            messages.error(request, "A team keeps at least one owner.")
            return redirect("team")
        else:
            Membership.objects.update_or_create(team=request.team, user=user,
                                                defaults={"role": form.cleaned_data["role"]})
            messages.success(request, f"{user.username} is now a {form.cleaned_data['role']} of {request.team}.")
    return redirect("team")


@require_POST
@owner_required
def remove_member(request, username):
    m = get_object_or_404(Membership, team=request.team, user__username=username)
    owners = request.team.memberships.filter(role=Membership.OWNER).count()
    if m.role == Membership.OWNER and owners == 1:
        messages.error(request, "A team keeps at least one owner.")
    else:
        m.delete()
        messages.success(request, f"{m.user.username} was removed from {request.team}.")
    return redirect("team")
