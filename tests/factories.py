"""Objects for tests, made the way the app makes them. One place instead of
a make() helper in every test file."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from playground.accounts.models import Membership, Team
from playground.generations import jobs
from playground.generations.models import Generation


def job(team, user, provider: str = "kie", model: str = "seedream-v4", /, prompt: str | None = None,
        **params) -> Generation:
    """A generation queued as the playground form queues one (jobs.create:
    estimate, row and task). Provider and model are positional: a model may
    have a parameter called "model" (Flux Kontext's Pro/Max)."""
    if prompt is not None:
        params = {"prompt": prompt, **params}
    return jobs.create(team=team, owner=user, provider=provider, model=model, params=params)


def user(username: str, password: str | None = None):
    return get_user_model().objects.create_user(username, password=password or f"pw-{username}-123")


def team(name: str, owner=None, members=()) -> Team:
    """A team with an owner and members (users)."""
    t = Team.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(team=t, user=owner, role=Membership.OWNER)
    for m in members:
        Membership.objects.create(team=t, user=m, role=Membership.MEMBER)
    return t
