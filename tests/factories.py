"""Objects for tests, made the way the app makes them. One place instead of
a make() helper in every test file."""

from __future__ import annotations

from decimal import Decimal
import hashlib
import io

from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image

from playground.accounts.models import Membership, Team, endpoint_source
from playground.generations.pipeline import results
from playground.generations.pipeline.create import create as create_job
from playground.generations.models import Generation
from playground.lib.images import check_image
from playground.providers.errors import ProviderError
from playground.providers.exchange import Outcome


# Keyword arguments of the job factories that go to pipeline.create, not to the model.
JOB_FIELDS = ("visibility", "remix_of", "prompt_version_uuid", "api_token")


def job(team, user, provider: str = "kie", model: str = "seedream-v4", /, prompt: str | None = None,
        **params) -> Generation:
    """A generation queued as the playground form queues one (pipeline.create:
    estimate, row, reservation and task). Provider and model are positional:
    a model may have a parameter called "model" (Flux Kontext's Pro/Max).
    visibility, remix_of, prompt_version_uuid and api_token go to
    pipeline.create; any other keyword is a parameter of the model."""
    create = {k: params.pop(k) for k in JOB_FIELDS if k in params}
    if prompt is not None:
        params = {"prompt": prompt, **params}
    return create_job(team=team, owner=user, provider=provider, model=model, params=params, **create)


def finished_job(team, user, provider: str = "kie", model: str = "seedream-v4", /, prompt: str | None = None, *,
                 images: int = 1, credits: Decimal | None = None, size: tuple[int, int] = (64, 48),
                 **params) -> Generation:
    """A generation that succeeded, stored as the pipeline stores one, with
    no provider and no worker: job() then finish(). Keywords as job()'s."""
    return finish(job(team, user, provider, model, prompt=prompt, **params), images=images, credits=credits,
                  size=size)


def failed_job(team, user, provider: str = "kie", model: str = "seedream-v4", /, prompt: str | None = None, *,
               kind: str = "failed", message: str = "The provider reports failure.", **params) -> Generation:
    """A generation the provider failed: job() then fail(). Keywords as job()'s."""
    return fail(job(team, user, provider, model, prompt=prompt, **params), kind=kind, message=message)


def finish(gen: Generation, *, images: int = 1, credits: Decimal | None = None,
           size: tuple[int, int] = (64, 48)) -> Generation:
    """A queued job (made by pipeline.create: the form, a compare grid, the API)
    brought to success without a provider or a worker, as the pipeline
    stores one: moved as a provider's answer moves it (send, accepted), then
    results.finish with `images` real PNGs (size: width, height) through the
    app's image check (files and thumbnails in storage, GenerationImage
    rows), the charge captured in the same transaction. credits: what the
    provider reported (the capture's basis "reported"); None charges the
    estimate. Its first task, queued by pipeline.create, stays queued: run, it
    finds the job no longer active and does nothing."""
    _accepted(gen, credits)
    checked = [check_image(png(f"{gen.uuid}-{i}", size)) for i in range(images)]
    done = results.finish(gen, checked, Outcome("succeeded", job_id=gen.provider_job_id, credits_used=credits))
    assert done == "succeeded", done
    return gen


def fail(gen: Generation, *, kind: str = "failed", message: str = "The provider reports failure.") -> Generation:
    """A queued job the provider accepted, then failed, as the pipeline
    fails one (results.fail: the reservation released in the same transaction)."""
    _accepted(gen)
    done = results.fail(gen, Generation.RUNNING, ProviderError(kind, message))
    assert done == f"failed: {kind}", done
    return gen


def _accepted(gen: Generation, credits: Decimal | None = None) -> None:
    """The moves of a send the provider accepted (queued -> submitting -> running)."""
    now = timezone.now()
    moved = gen.transition(Generation.QUEUED, via="send", phase="submitting",
                           endpoint_source=endpoint_source(gen.team, gen.provider)) and gen.transition(
        Generation.SUBMITTING, via="accepted", provider_job_id=f"job-{gen.uuid.hex[:16]}", submitted_at=now,
        phase="downloading", credits_used=credits, due_at=now, attempts=0)
    assert moved, f"generation {gen.uuid} was {gen.status}, not queued"


def png(seed: str = "", size: tuple[int, int] = (64, 48)) -> bytes:
    """A small opaque PNG, its colour drawn from seed (a different file per seed)."""
    rgb = tuple(hashlib.sha256(seed.encode()).digest()[:3])
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "PNG")
    return buf.getvalue()


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
