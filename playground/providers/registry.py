"""The one place that maps a provider key to its adapter class:
settings.PROVIDERS (key -> dotted path), plus one OpenAI-Images-compatible
adapter per entry of settings.OPENAI_COMPATIBLE_PROVIDERS (no code needed)."""

from functools import cache
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from playground.lib.units import Unit, currency, unit_from_code

from .adapter import Adapter
from .params import ModelSpec
from .removed import removed_model, removed_provider

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


@cache
def adapter_classes() -> dict[str, type[Adapter]]:
    classes = {key: import_string(path) for key, path in settings.PROVIDERS.items()}
    for entry in getattr(settings, "OPENAI_COMPATIBLE_PROVIDERS", ()):
        cls = openai_compatible(entry)
        if cls.key in classes:
            raise ImproperlyConfigured(f"OPENAI_COMPATIBLE_PROVIDERS: provider key {cls.key!r} is already taken.")
        classes[cls.key] = cls
    return classes


def openai_compatible(entry: dict) -> type[Adapter]:
    """An adapter class for a server that speaks the OpenAI Images API: the
    Kawai adapter with this entry's key, label, base URL, request format,
    known model ids and (optional) price table. Without a key it talks to
    the Kawai sandbox."""
    from .kawai import KawaiAdapter

    key = entry.get("key")
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ImproperlyConfigured(
            f"OPENAI_COMPATIBLE_PROVIDERS: key {key!r} must be lowercase letters, digits or _ (at most 40)."
        )
    base_url = entry.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"OPENAI_COMPATIBLE_PROVIDERS: {key}: base_url must be an http(s) URL.")
    models = entry.get("models") or ()
    prices = entry.get("prices")
    if isinstance(models, str) or not all(isinstance(m, str) for m in models) or (
        prices is not None and not isinstance(prices, dict)
    ):
        raise ImproperlyConfigured(
            f"OPENAI_COMPATIBLE_PROVIDERS: {key}: models must be a list of ids, prices an object."
        )
    try:
        unit = currency(str(entry.get("currency") or "USD"))
    except ValueError:
        raise ImproperlyConfigured(
            f"OPENAI_COMPATIBLE_PROVIDERS: {key}: currency must be a three-letter code such as USD.") from None
    name = "".join(part.capitalize() for part in key.split("_")) + "Adapter"
    return type(name, (KawaiAdapter,), {
        "__module__": __name__,
        "key": key,
        "label": str(entry.get("label") or key),
        "default_base_url": base_url.rstrip("/"),
        "sandbox_prefix": KawaiAdapter.sandbox_prefix,
        "multipart_images": bool(entry.get("multipart_images", False)),
        "known_models": tuple(models),
        "prices": prices,
        "prices_setting": None,
        "unit": unit,
    })


def get(key: str) -> type[Adapter]:
    try:
        return adapter_classes()[key]
    except KeyError:
        raise LookupError(f"unknown provider {key!r}") from None


def get_or_removed(key: str) -> type[Adapter]:
    """The adapter class for a stored provider key: the configured one, or a
    RemovedProvider labelled with the key when it is no longer configured.
    For describing what was stored (pages, ledger); get() for sending."""
    return adapter_classes().get(key) or removed_provider(key)


def spec_or_removed(provider: str, model: str) -> ModelSpec:
    """The declared model for stored keys, or a RemovedModel labelled with
    the model key when the provider or the model is no longer configured."""
    return get_or_removed(provider).models.get(model) or removed_model(model)


def choices() -> list[tuple[str, str]]:
    return [(key, cls.label) for key, cls in adapter_classes().items()]


def units() -> dict[str, Unit]:
    """Every configured provider's unit, by code."""
    return {cls.unit.code: cls.unit for cls in adapter_classes().values()}


def unit(code: str) -> Unit:
    """The Unit a stored code names, also for a provider no longer configured."""
    return unit_from_code(code, units().get)
