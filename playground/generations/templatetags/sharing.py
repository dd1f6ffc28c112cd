"""Template tags for the shared side of generations: whether an adult
result is blurred for the viewer."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def blurred(context, gen) -> bool:
    """An adult-flagged generation is blurred for anyone but its owner, until
    they reveal it: with JS in place (static/reveal.js), or with ?reveal=1 on
    that generation's own page (the view puts `reveal` in the context)."""
    if not getattr(gen, "is_adult", False):
        return False
    request = context.get("request")
    viewer = getattr(getattr(request, "user", None), "pk", None)
    if viewer is not None and gen.owner_id == viewer:
        return False
    shown = context.get("gen")
    return not (context.get("reveal") and shown is not None and shown.pk == gen.pk)
