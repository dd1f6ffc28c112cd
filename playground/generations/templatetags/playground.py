from django import template

register = template.Library()

STEPS = ["queued", "submitted", "generating", "done"]


@register.filter
def duration(td) -> str:
    seconds = int(td.total_seconds()) if td is not None else 0
    if seconds < 1:
        return "<1s"
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.simple_tag
def steps(gen):
    """The progress steps with their state: done, current, failed or todo."""
    stage = gen.stage
    if gen.status == "succeeded":
        reached = 3
    elif gen.status == "running":
        reached = 2 if stage == "generating" or stage == "downloading" else 1
    elif gen.status == "failed":
        reached = failed_step(gen)
    else:
        reached = 0
    out = []
    for i, name in enumerate(STEPS):
        state = "done" if i < reached or gen.status == "succeeded" else "current" if i == reached else "todo"
        if gen.status == "failed" and i == reached:
            state = "failed"
        elif gen.status in ("failed", "canceled") and i >= reached:
            state = "todo"
        out.append({"name": name, "state": state})
    return out


def failed_step(gen) -> int:
    """Where a failed job stopped: sending it (never accepted), while the
    provider worked on it, or fetching the finished image ("done")."""
    if gen.submitted_at is None and not gen.provider_job_id:
        return STEPS.index("submitted")
    if gen.error_kind == "download" or gen.result_urls:
        return STEPS.index("done")
    return STEPS.index("generating")


@register.filter
def credits_text(value) -> str:
    """An amount with its unit: "1 credit", "0.5 credits", "12 credits"."""
    if value is None:
        return "-"
    amount = credits(value)
    return f"{amount} credit" if amount == "1" else f"{amount} credits"


@register.simple_tag
def image_targets():
    """(provider, model, label) of the models that take an input image: the
    choices of "Use as input"."""
    from playground.generations.views_media import image_models

    return image_models()


@register.filter
def credits(value) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


@register.filter
def in_unit(value, provider: str) -> str:
    """An amount in a provider's own unit: "3.5 KIE credits", "1 Kwiki credit", "$0.04"."""
    if value is None:
        return "-"
    from playground.providers import registry

    return registry.get_or_removed(provider).unit.format(value)


@register.filter
def stamp(dt) -> int:
    """A datetime as whole microseconds since the epoch: a job card's version
    stamp (updated_at) for the page's one poll (generations/polling.py)."""
    from playground.generations.polling import stamp as to_stamp

    return to_stamp(dt)


@register.filter
def whole_seconds(value) -> int:
    """A timedelta as whole seconds (a card's elapsed time, ticked by the page)."""
    return int(value.total_seconds()) if value is not None else 0


@register.filter
def seconds_until(dt) -> int:
    """Whole seconds from now until dt (0 if past): a countdown's start, ticked by the page."""
    from django.utils import timezone

    return max(0, round((dt - timezone.now()).total_seconds())) if dt is not None else 0
