"""Kwiki AI: synchronous text-to-image. One POST, one image, no status
endpoint: the response carries the image URL (or the error).

Contract: shared/providers/kwiki.md.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from playground.lib.units import credit_unit

from .adapter import Adapter
from .errors import ProviderError
from .exchange import Outcome, PreparedRequest
from .params import ModelSpec, Param

PROMPT_MAX = 1000
AGE_MIN, AGE_MAX = 18, 70
GENDERS = ("female", "male", "trans")
NUDE = {"style": ("nude",)}  # appearance and snap caption apply only to the adult style


def credits(params: dict) -> Decimal:
    """fast = 1 credit, hires = 2; charged only on success."""
    return Decimal(2) if params.get("quality") == "hires" else Decimal(1)


def _look(name: str, label: str, suggestions: str = "") -> Param:
    text = "Optional, free text (Kwiki accepts any value)."
    return Param(name, "text", label=label, field=f"appearance.{name}", max_length=100, show_if=NUDE,
                 help=f"{text} Suggested: {suggestions}." if suggestions else text)


PARAMS = (
    Param("prompt", "longtext", required=True, max_length=PROMPT_MAX, help="Describe the image (at most 1000 characters)."),
    Param("quality", "choice", choices=(("fast", "Fast (1 credit)"), ("hires", "High resolution (2 credits)")),
          default="fast", priced=True, openai="quality",
          openai_values=(("standard", "fast"), ("low", "fast"), ("medium", "fast"), ("hd", "hires"), ("high", "hires"))),
    Param("style", "choice", choices=(("realistic", "Realistic"), ("anime", "Anime"), ("nude", "Nude (adult selfie mode)")),
          default="realistic", adult_values=("nude",),
          help="The adult style enables appearance and snap caption."),
    Param("gender", "choice", field="appearance.gender", choices=(("female", "Female"), ("male", "Male"), ("trans", "Trans")),
          show_if=NUDE, help="Kwiki's default is female."),
    Param("age", "int", field="appearance.age", min=AGE_MIN, max=AGE_MAX, show_if=NUDE,
          help="18 to 70: every subject is an adult."),
    _look("ethnicity", "Ethnicity"),
    _look("hair_style", "Hair style"),
    _look("hair_color", "Hair color", "brunette, blonde, black, redhead, pink, silver"),
    _look("eye_color", "Eye color"),
    _look("body_type", "Body type"),
    _look("breast_size", "Breast size"),
    Param("snap_caption", "bool", label="Random caption", show_if=NUDE,
          help="Add a random snapshot caption. Ignored when you write a caption below."),
    Param("snap_caption_text", "text", label="Caption text", max_length=200, show_if=NUDE,
          help="Optional: your own caption instead of a random one."),
    Param("snap_caption_position", "choice", label="Caption position", choices=(("center", "Center"),),
          default="center", show_if=NUDE, help="The docs only show center."),
)
# Declared as parameters, sent as one field: true or {"text", "position"}.
CAPTION_PARAMS = ("snap_caption", "snap_caption_text", "snap_caption_position")


def prompt_not_blank(params: dict) -> None:
    """Kwiki refuses a prompt of spaces only (the declarations say
    "required", which spaces satisfy)."""
    if not params.get("prompt", "").strip():
        raise ProviderError("validation", "A prompt is required.", field="prompt")


MODELS = {
    "generate": ModelSpec(
        key="generate",
        label="Text to image",
        description="Synchronous: one request, one image. Fast 1 credit, high resolution 2.",
        path="/api/v1/generate",
        credits=credits,
        params=PARAMS,
        extra_check=prompt_not_blank,
    ),
}

# Error code -> our error kind (the HTTP status is the fallback).
KINDS = {
    "missing_api_key": "auth",
    "invalid_api_key": "auth",
    "invalid_request": "validation",
    "validation_error": "validation",
    "insufficient_credits": "insufficient_credits",
    "content_blocked": "content_blocked",
    "rate_limited": "rate_limited",
    "internal_error": "server_error",
    # "Not charged": the same request may be sent again.
    "generation_failed": "unavailable",
}


class KwikiAdapter(Adapter):
    key = "kwiki"
    label = "Kwiki AI"
    unit = credit_unit("kwiki_credit", "Kwiki credits")
    mode = "sync"
    default_base_url = "https://kwikiai.com"
    sandbox_prefix = "/kwiki"
    models = MODELS
    rate_limits = ((10, 60.0), (100, 3600.0))

    def build_request(self, model, params, *, callback_url=None, images=None):
        spec = self.model(model)
        spec.validate(params)  # ages 18-70, choices, lengths: declared in PARAMS
        body = spec.body({k: v for k, v in params.items() if k not in CAPTION_PARAMS}, images)
        caption = self.snap_caption(spec, params)
        if caption is not None:
            body["snap_caption"] = caption
        return PreparedRequest(
            "POST", self.base_url + spec.path, json=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    @staticmethod
    def snap_caption(spec: ModelSpec, params: dict):
        if not spec.param("snap_caption").applies(params):
            return None
        text = (params.get("snap_caption_text") or "").strip()
        if text:
            return {"text": text, "position": params.get("snap_caption_position") or "center"}
        return True if params.get("snap_caption") is True else None

    def submit(self, model, params, *, callback_url=None, images=None):
        resp, body = self._request(self.build_request(model, params, images=images), model=model)
        return self.parse_generate(resp, self.model(model).estimate(params), body)

    def check(self, model, job_id):
        raise ProviderError(
            "not_found",
            "Kwiki AI is synchronous and has no status endpoint: the image URL comes only in the "
            "response to the generation request.",
        )

    # -- responses --
    def parse_generate(self, resp, estimate: Decimal | None = None, body=None) -> Outcome:
        """body: as _request returned it (already checked); None: read resp."""
        if body is None:
            body = self.read(resp)
        if not isinstance(body, dict):
            raise ProviderError("bad_response", "Kwiki AI answered 200 with a body that is not a JSON object.",
                                status=200)
        if body.get("status") not in (None, "completed"):
            raise ProviderError("bad_response", f"Kwiki AI answered 200 with status {body.get('status')!r}.", status=200)
        url = body.get("image_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ProviderError("bad_response", "Kwiki AI reports success but no image URL.", status=200)
        used = body.get("credits_used")
        try:
            used = Decimal(str(used)) if used is not None and not isinstance(used, bool) else estimate
        except InvalidOperation:
            used = estimate
        remaining = resp.headers.get("X-RateLimit-Remaining")
        return Outcome(
            "succeeded", job_id=str(body.get("id") or ""), image_urls=[url], credits_used=used, raw=body,
            hint=f"{remaining} requests left in the rate-limit window" if remaining not in (None, "") else "",
        )

    def raise_for_response(self, resp, body, *, model=None):
        """{"error": CODE, "message", ...extra}; the code wins over the
        status. Every answer carries X-RateLimit-Remaining: kept in details."""
        status = resp.status_code
        if status == 200:
            return
        body = body if isinstance(body, dict) else {}
        code = str(body.get("error") or "")
        message = str(body.get("message") or f"Kwiki AI answered HTTP {status}.")
        details = {}
        remaining = resp.headers.get("X-RateLimit-Remaining")
        if remaining not in (None, ""):
            details["rate_limit_remaining"] = remaining
        err = self.http_error(resp, body, kind=KINDS.get(code), message=message, code=code or None, details=details)
        if err.kind == "validation" and body.get("field"):
            err.field = self.param_for_field(str(body["field"]))
        if err.kind == "insufficient_credits":
            need, have = body.get("credits_required"), body.get("credits_available")
            err.details.update(credits_required=need, credits_available=have)
            if need is not None or have is not None:
                err.message = f"{message} (needs {need} credits, {have} available)"
                err.args = (err.message,)
        raise err

    @staticmethod
    def param_for_field(name: str) -> str:
        """Kwiki's field name ("appearance.age") -> our parameter ("age")."""
        for p in MODELS["generate"].params:
            if p.provider_field == name:
                return p.name
        # snap_caption.text -> snap_caption_text; a bare object -> its first field
        flat = name.replace(".", "_")
        names = [p.name for p in MODELS["generate"].params]
        if flat in names:
            return flat
        return next((n for n in names if n.startswith(flat + "_") or n == name.split(".")[-1]), name)
