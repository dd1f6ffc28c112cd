"""Stand-ins for a provider or a model that is no longer configured
(healthchecks' RemovedTransport): a generation or a charge keeps its stored
provider and model keys, and every page still shows it under those names.

A removed provider or model describes; it never sends. Its label is the
stored key, it declares no parameters, its estimate is 0 and it builds no
request (so no "copy as code"). A job of a removed provider that is still
active fails with a "config" error when a worker reaches it (Endpoint.resolve
refuses a provider the registry does not know).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from .adapter import Adapter
from .errors import ProviderError
from .params import ModelSpec

PROVIDER_GONE = "This provider is no longer configured on this instance."
MODEL_GONE = "This model is no longer configured on this instance."


@dataclass(frozen=True)
class RemovedModel(ModelSpec):
    """A model key that its provider no longer declares."""


@cache
def removed_model(key: str) -> RemovedModel:
    return RemovedModel(key=key, label=key, params=(), credits=Decimal("0"), description=MODEL_GONE)


class RemovedProvider(Adapter):
    """The adapter class of a provider key that is no longer configured:
    see removed_provider(key) for one with the stored key as its label."""

    models: dict[str, ModelSpec] = {}

    @classmethod
    def model(cls, key: str) -> ModelSpec:
        return removed_model(key)

    def _gone(self, *args, **kwargs):
        raise ProviderError("config", PROVIDER_GONE)

    build_request = submit = check = key_check = _gone


@cache
def removed_provider(key: str) -> type[RemovedProvider]:
    """The RemovedProvider for one stored provider key (one class per key)."""
    return type(f"Removed_{key}", (RemovedProvider,), {"__module__": __name__, "key": key, "label": key})


def is_removed(obj) -> bool:
    """True for a removed provider class or a removed model."""
    return isinstance(obj, RemovedModel) or (isinstance(obj, type) and issubclass(obj, RemovedProvider))
