"""Kawai: an OpenAI-Images-compatible API. Synchronous: the response holds
the images (URLs or base64). Generations, edits and variations.

Contract: shared/providers/kawai.md. The same class serves any server that
speaks the OpenAI Images wire format (see OPENAI_COMPATIBLE_PROVIDERS and
registry.py): subclasses change the key, label, base URL, the known model ids,
the price table and whether edits/variations travel as multipart (OpenAI)
or as JSON with data URLs (Kawai).
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal, InvalidOperation

import httpx

from playground.lib.units import currency

from .adapter import Adapter
from .errors import ProviderError
from .exchange import Outcome, PreparedRequest, unique
from .params import ModelSpec, Param

# Model ids offered as suggestions; the field stays free text. The contract
# lists none, so Kawai offers none by default (settings.KAWAI_MODELS adds some).
KNOWN_MODELS: tuple[str, ...] = ()

SIZES = ("256x256", "512x512", "1024x1024", "1024x1536", "1536x1024")
SIZE_PATTERN = r"[1-9]\d{1,4}x[1-9]\d{1,4}"

# Estimated cost per image: model -> size -> quality -> price, "*" matches
# anything; a number at any level covers everything below it. Kawai reports
# no cost, so this is an estimate (override: env KAWAI_PRICES, same shape).
PRICES = {
    "*": {
        "256x256": "0.016",
        "512x512": "0.018",
        "1024x1024": {"standard": "0.04", "hd": "0.08"},
        "*": {"standard": "0.08", "hd": "0.12"},
    },
}

# Endpoint names a token is granted for (403 when it lacks one).
ENDPOINT_SCOPES = {
    "generations": "images-generations",
    "edits": "images-edits",
    "variations": "images-variations",
}


def price_for(table: dict, params: dict) -> Decimal:
    """Price per image from a price table; 0 when nothing matches."""
    node = table
    for key in (params.get("model") or "*", params.get("size") or "1024x1024", params.get("quality") or "standard"):
        if not isinstance(node, dict):
            break
        node = node.get(key, node.get("*"))
    while isinstance(node, dict):
        node = node.get("*")
    if node is None:
        return Decimal("0")
    try:
        return Decimal(str(node))
    except InvalidOperation:
        return Decimal("0")


def build_models(adapter: type["KawaiAdapter"]) -> dict[str, ModelSpec]:
    """The three endpoints as models, with the adapter's known model ids and
    its price table."""

    def cost(params: dict) -> Decimal:
        n = params.get("n") or 1
        return price_for(adapter.price_table(), params) * int(n)

    n = Param("n", "int", label="Images", min=1, max=10, default=1, priced=True, help="How many images (1-10).",
              openai="n")
    size = Param(
        "size", "text", label="Size", choices=SIZES, default="1024x1024", max_length=11, pattern=SIZE_PATTERN, priced=True,
        help="WIDTHxHEIGHT in pixels: pick a suggestion or type any size the server supports.", openai="size",
    )
    response_format = Param(
        "response_format", "choice", label="Delivery", choices=(("url", "URL"), ("b64_json", "Base64 in the response")),
        help="How the server returns the images (provider default: URL for most servers).",
    )
    image = Param("image", "image", label="Image", required=True, image_as="data_url",
                  help="PNG, JPEG or WebP.")
    price_help = f"Cost is an estimate from the price table; {adapter.label} reports none."
    return {
        "generations": ModelSpec(
            key="generations", label="Generate", path="/images/generations", credits=cost,
            description=f"Text to image. {price_help}",
            params=(
                Param("prompt", "longtext", required=True, max_length=4000, help="Describe the image."),
                Param(
                    "model", "text", label="Model", choices=tuple(adapter.known_models), max_length=100, priced=True,
                    help="Model id; leave empty for the server's default.",
                ),
                n,
                size,
                Param("quality", "choice", label="Quality", choices=(("standard", "Standard"), ("hd", "HD")), priced=True,
                      openai="quality"),
                response_format,
            ),
        ),
        "edits": ModelSpec(
            key="edits", label="Edit", path="/images/edits", credits=cost,
            description=f"Change an image as the prompt says; a mask limits where. {price_help}",
            params=(
                Param("prompt", "longtext", required=True, max_length=4000, help="The edit to make."),
                image,
                Param("mask", "image", label="Mask", image_as="data_url",
                      help="Optional, same size as the image: white = edit, black = keep."),
                n,
                size,
                response_format,
            ),
        ),
        "variations": ModelSpec(
            key="variations", label="Variations", path="/images/variations", credits=cost,
            description=f"New images in the manner of an input image. {price_help}",
            params=(image, n, size, response_format),
        ),
    }


class KawaiAdapter(Adapter):
    key = "kawai"
    label = "Kawai"
    unit = currency("USD")  # its price table is in US dollars
    mode = "sync"
    default_base_url = "https://api.getkawai.com/v1"
    sandbox_prefix = "/kawai/v1"
    # Edits and variations as multipart/form-data with raw image bytes
    # (OpenAI) instead of JSON with data URLs (Kawai).
    multipart_images = False
    known_models: tuple[str, ...] = KNOWN_MODELS
    # A price table for this provider (see PRICES); None: the setting named
    # by prices_setting, else PRICES.
    prices: dict | None = None
    prices_setting: str | None = "KAWAI_PRICES"
    # Several images of a synchronous request can take a while.
    timeout = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=10.0)
    models: dict[str, ModelSpec] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "models" not in cls.__dict__:  # each provider its own model ids and prices
            cls.models = build_models(cls)

    @classmethod
    def price_table(cls) -> dict:
        if cls.prices is not None:
            return cls.prices
        if cls.prices_setting:
            from django.conf import settings

            table = getattr(settings, cls.prices_setting, None)
            if table:
                return table
        return PRICES

    # -- requests --
    def build_request(self, model, params, *, callback_url=None, images=None):
        spec = self.model(model)
        spec.validate(params)
        url = self.base_url + spec.path
        image_params = spec.image_params()
        if self.multipart_images and image_params:
            plain = {k: v for k, v in params.items() if k not in {p.name for p in image_params}}
            data = {k: str(v) for k, v in spec.body(plain).items()}
            files = []
            for p in image_params:
                img = (images or {}).get(p.name)
                if img is None:
                    if p.required or params.get(p.name):
                        raise ProviderError("validation", f"The input image for {p.title} is missing.", field=p.name)
                    continue
                files.append((p.provider_field, (img.name, img.data(), img.content_type)))
            return PreparedRequest("POST", url, data=data, files=files, headers={"Accept": "application/json"})
        return PreparedRequest(
            "POST", url, json=spec.body(params, images),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def submit(self, model, params, *, callback_url=None, images=None):
        resp, body = self._request(self.build_request(model, params, images=images), model=model)
        return self.parse_response(resp, model, body)

    def check(self, model, job_id):
        raise ProviderError("not_found", f"{self.label} is synchronous: there is no job to check.")

    # -- responses --
    def parse_response(self, resp: httpx.Response, model: str = "generations", body=None) -> Outcome:
        """body: as _request returned it (already checked); None: read resp."""
        if body is None:
            body = self.read(resp, model=model)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ProviderError("bad_response", f"{self.label} answered without a data list.", status=resp.status_code)
        urls, blobs, revised = [], [], []
        for item in body["data"]:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("b64_json"), str) and item["b64_json"]:
                data = item["b64_json"]
                if data.startswith("data:") and "," in data:  # a data URL instead of bare base64
                    data = data.split(",", 1)[1]
                try:
                    blobs.append(base64.b64decode(data, validate=True))
                except (binascii.Error, ValueError):
                    raise ProviderError("bad_response", f"{self.label} sent an image that is not valid base64.") from None
            elif isinstance(item.get("url"), str) and item["url"]:
                urls.append(item["url"])
            if isinstance(item.get("revised_prompt"), str) and item["revised_prompt"]:
                revised.append(item["revised_prompt"])
        if not urls and not blobs:
            raise ProviderError("bad_response", f"{self.label} returned no image.", status=resp.status_code)
        raw = {"created": body.get("created"), "images": len(urls) + len(blobs)}
        if revised:
            raw["revised_prompts"] = revised
        return Outcome(
            "succeeded", image_urls=unique(urls), image_bytes=blobs, raw=raw,
            hint="cost estimated from the price table",
        )

    def raise_for_response(self, resp: httpx.Response, body, *, model: str | None = None):
        """OpenAI's {"error": {"message", "type", "code", "param"}}, or
        {"error": TEXT}, {"detail": ...}, {"message": ...}; only a 200 is a
        success."""
        status = resp.status_code
        if status == 200:
            return
        err = body.get("error") if isinstance(body, dict) else None
        etype = code = param = message = None
        if isinstance(err, dict):
            message, etype, code, param = err.get("message"), err.get("type"), err.get("code"), err.get("param")
        elif isinstance(err, str):  # {"error": "text"}
            message = err
        elif isinstance(body, dict):  # {"detail": ...} or {"message": ...}
            message = body.get("detail") or body.get("message")
        message = str(message or f"HTTP {status}")
        code = str(code or etype or status)
        kind = field = None
        if status == 401:
            message = f"{self.label} rejected the API key: {message}"
        elif status == 403:
            scope = ENDPOINT_SCOPES.get(model, model)
            message = (f"The API key has no access to this endpoint ({scope}); ask for a token that includes it. "
                       f"{self.label} said: {message}")
        elif status in (400, 422):
            if "content_policy" in code or "moderation" in code or etype == "content_policy_violation":
                kind = "content_blocked"
            else:
                field = self._field_for(model, param)
        elif status == 429 and (code == "insufficient_quota" or etype == "insufficient_quota"):
            kind = "insufficient_credits"
        raise self.http_error(resp, body, kind=kind, message=message, code=code, field=field)

    def _field_for(self, model: str, param) -> str | None:
        """Our parameter name for the provider's field name, if we have it."""
        if not isinstance(param, str) or not param:
            return None
        spec = self.models.get(model)
        for p in spec.params if spec else ():
            if p.provider_field == param or p.name == param:
                return p.name
        return None


def _configured_models() -> tuple[str, ...]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return tuple(getattr(settings, "KAWAI_MODELS", ()) or KNOWN_MODELS)
    except ImproperlyConfigured:  # imported without Django settings
        return KNOWN_MODELS


KawaiAdapter.known_models = _configured_models()
KawaiAdapter.models = build_models(KawaiAdapter)
