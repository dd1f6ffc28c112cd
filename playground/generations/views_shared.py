"""What the generation views share: the rows of a model this viewer may
see in the current team (visible_to), a generation they may see or a 404,
one template rendered whole or one named partial of it, and context values
computed only when the template uses them."""

from functools import cache, partial

from django.shortcuts import get_object_or_404, render

from .models import Generation


def visible(request, model):
    """The rows of model this user may see in the current team (visible_to)."""
    return model.objects.visible_to(request.user, request.team)


def visible_generations(request):
    return visible(request, Generation)


def generation_or_404(request, uuid):
    # The owner comes in the same query: the page says who made it, with no
    # extra query per poll of the card.
    return get_object_or_404(visible_generations(request).select_related("team", "owner"), uuid=uuid)


def lazy(fn, *args):
    """A context value computed only if the template or partial being
    rendered uses it, and then once (the template calls it)."""
    return cache(partial(fn, *args))


def render_page(request, template, context, part=None, **kwargs):
    """One template per page: the whole page, or one named partial of it
    (django-htmx's partial rendering: "page.html#name"), with the same context."""
    return render(request, f"{template}#{part}" if part else template, context, **kwargs)
