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
    """The progress steps with their state: done, current or todo."""
    stage = gen.stage
    if gen.status == "succeeded":
        reached = 3
    elif gen.status == "running":
        reached = 2 if stage == "generating" or stage == "downloading" else 1
    else:
        reached = 0
    out = []
    for i, name in enumerate(STEPS):
        state = "done" if i < reached or gen.status == "succeeded" else "current" if i == reached else "todo"
        if gen.status in ("failed", "canceled") and i >= reached:
            state = "todo"
        out.append({"name": name, "state": state})
    return out


@register.filter
def credits(value) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"
