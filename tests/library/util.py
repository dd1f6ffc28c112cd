"""Prompts for the library's tests, made the way the app makes them."""

from __future__ import annotations

from playground.library.models import Prompt

from tests import factories


def prompt(team, owner, title="Lighthouse", text="a lighthouse in fog", *, visibility=Prompt.SHARED,
           provider="kie", model="seedream-v4", params=None, tags=(), notes="") -> Prompt:
    p = Prompt.objects.create(team=team, owner=owner, title=title, visibility=visibility)
    p.add_version(text=text, provider=provider, model=model,
                  params=params if params is not None else {"image_size": "square", "num_inference_steps": 20},
                  tags=tags, notes=notes, message="First version", by=owner)
    return p


def teammate(team, name="bob"):
    u = factories.user(name)
    team.memberships.create(user=u, role="member")
    return u
