"""The one place that maps a provider key to its adapter class (settings.PROVIDERS)."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Adapter


@cache
def adapter_classes() -> dict[str, type[Adapter]]:
    return {key: import_string(path) for key, path in settings.PROVIDERS.items()}


def get(key: str) -> type[Adapter]:
    try:
        return adapter_classes()[key]
    except KeyError:
        raise LookupError(f"unknown provider {key!r}") from None


def choices() -> list[tuple[str, str]]:
    return [(key, cls.label) for key, cls in adapter_classes().items()]
