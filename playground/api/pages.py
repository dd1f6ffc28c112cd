"""The team owner's page for model aliases (names API callers may use as
`model`). Owners only; other members are sent back as on every owner page."""

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from playground.accounts.access import owner_required

from .catalog import configured
from .models import ModelAlias


@owner_required
def aliases(request):
    alias = ModelAlias(team=request.team, created_by=request.user)
    errors = {}
    if request.method == "POST":
        alias.name = request.POST.get("name", "").strip()[:64]
        alias.target = request.POST.get("target", "").strip()[:101]
        try:
            alias.full_clean(exclude=["team", "created_by"])
            with transaction.atomic():
                alias.save()
        except IntegrityError:
            errors = {"name": ["Your team already has an alias with this name."]}
        except Exception as e:  # ValidationError: shown on its field
            errors = getattr(e, "message_dict", {"name": [str(e)]})
        if not errors:
            messages.success(request, f"Alias {alias.name} -> {alias.target} added.")
            return redirect("api_aliases")
    return render(request, "api/aliases.html", {
        "aliases": ModelAlias.objects.filter(team=request.team), "targets": sorted(configured()),
        "alias": alias, "errors": errors,
    }, status=400 if errors else 200)


@require_POST
@owner_required
def delete_alias(request, uuid):
    alias = get_object_or_404(ModelAlias, team=request.team, uuid=uuid)
    alias.delete()
    messages.success(request, f"Alias {alias.name} deleted.")
    return redirect("api_aliases")
