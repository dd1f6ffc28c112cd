"""kvid.ai: asynchronous "Nano Banana" generation. Submit returns a job_id;
GET status?jobId= reports queued / processing / completed / failed, and
GET result?jobId= gives the image URL(s) and the credits used.

Contract: shared/providers/kvid.md. Where it is vague (error body shape,
result shape for several images, estimated_time format) the adapter accepts
every reading the contract lists.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
import os
import re
from urllib.parse import quote

from playground.lib.units import credit_unit

from .adapter import Adapter
from .errors import ProviderError
from .exchange import Outcome, PreparedRequest, unique
from .params import ModelSpec, Param

# The public price is per megapixel but not documented: estimate with this
# rate, overridable by the KVID_CREDITS_PER_MEGAPIXEL setting / environment
# variable. One megapixel here is 1024 x 1024 pixels, which matches the
# contract's example (a 1024 x 1024 image used 8 credits).
CREDITS_PER_MEGAPIXEL = Decimal("8")
MEGAPIXEL = 1024 * 1024
DEFAULT_SIDE = 1024  # no size sent: the provider renders 1024 x 1024
MAX_SIDE = 1024

SIZE_MODES = (("aspect_ratio", "Aspect ratio"), ("custom", "Width x height"))
ASPECT_RATIOS = (
    ("1:1", "Square 1:1"),
    ("4:3", "Landscape 4:3"),
    ("3:2", "Landscape 3:2"),
    ("16:9", "Landscape 16:9"),
    ("3:4", "Portrait 3:4"),
    ("2:3", "Portrait 2:3"),
    ("9:16", "Portrait 9:16"),
)
ONLY_RATIO = {"size_mode": ("aspect_ratio",)}
ONLY_CUSTOM = {"size_mode": ("custom",)}
# Parameters that steer the form but are not provider fields.
NOT_SENT = ("size_mode",)


def _params(image: Param | None = None) -> tuple[Param, ...]:
    return tuple(p for p in (
        # The contract sets no length limit: 4000 characters (our default for prompts).
        Param("prompt", "longtext", required=True, max_length=4000,
              help="Describe the image. Same seed + prompt gives the same image."),
        image,
        Param("negative_prompt", "longtext", label="Negative prompt", max_length=4000, help="Optional. Things to avoid."),
        Param("size_mode", "choice", label="Size", choices=SIZE_MODES, default="aspect_ratio", priced=True,
              help="An aspect ratio (longer side 1024 px), or an exact width and height."),
        Param("aspect_ratio", "choice", label="Aspect ratio", choices=ASPECT_RATIOS, default="1:1",
              show_if=ONLY_RATIO, priced=True),
        Param("width", "int", min=256, max=MAX_SIDE, default=1024, field="image_size.width", show_if=ONLY_CUSTOM,
              priced=True, openai="size", openai_as="width",
              help="256-1024 px; multiples of 64 recommended."),
        Param("height", "int", min=256, max=MAX_SIDE, default=1024, field="image_size.height", show_if=ONLY_CUSTOM,
              priced=True, openai="size", openai_as="height",
              help="256-1024 px; multiples of 64 recommended."),
        Param("num_inference_steps", "choice", label="Steps", choices=(20, 30, 40, 50),
              help="More steps: more detail, slower."),
        Param("guidance_scale", "choice", label="Guidance scale",
              choices=((3.0, "3"), (5.0, "5"), (7.5, "7.5"), (10.0, "10")),
              help="How closely to follow the prompt."),
        Param("seed", "int", min=0, max=2**31 - 1, random_default=(1, 2**31 - 1),
              help="Optional. Left empty, a random seed is drawn and recorded with the job (see its details)."),
        Param("num_images", "int", label="Images", min=1, max=4, default=1, priced=True, help="Images per job (1-4).",
              openai="n"),
        Param("output_format", "choice", label="Format", choices=(("jpeg", "JPEG"), ("png", "PNG")), default="jpeg",
              openai="output_format"),
        Param("enable_safety_checker", "bool", label="Safety checker", default=True),
    ) if p is not None)


def rate() -> Decimal:
    """Credits per megapixel: the setting or environment variable, else the constant."""
    try:
        from django.conf import settings

        value = getattr(settings, "KVID_CREDITS_PER_MEGAPIXEL", "")
    except Exception:  # settings not configured (a script outside Django)
        value = ""
    value = value or os.environ.get("KVID_CREDITS_PER_MEGAPIXEL", "")
    try:
        parsed = Decimal(str(value)) if value not in ("", None) else CREDITS_PER_MEGAPIXEL
    except InvalidOperation:
        return CREDITS_PER_MEGAPIXEL
    return parsed if parsed.is_finite() and parsed >= 0 else CREDITS_PER_MEGAPIXEL


def dimensions(params: dict) -> tuple[int, int]:
    """The output size the params ask for (as sent: a field that does not apply is not sent)."""
    mode = params.get("size_mode")
    if mode == "custom":
        return int(params.get("width") or DEFAULT_SIDE), int(params.get("height") or DEFAULT_SIDE)
    if mode == "aspect_ratio" and params.get("aspect_ratio"):
        try:
            a, b = (int(x) for x in str(params["aspect_ratio"]).split(":"))
        except ValueError:
            return DEFAULT_SIDE, DEFAULT_SIDE
        if a >= b:
            return MAX_SIDE, round(MAX_SIDE * b / a)
        return round(MAX_SIDE * a / b), MAX_SIDE
    return DEFAULT_SIDE, DEFAULT_SIDE


def estimate(params: dict) -> Decimal:
    w, h = dimensions(params)
    n = int(params.get("num_images") or 1)
    return (rate() * w * h * n / MEGAPIXEL).quantize(Decimal("0.01"))


MODELS = {
    "text-to-image": ModelSpec(
        key="text-to-image",
        label="Nano Banana: text to image",
        description="K-pop and K-beauty tuned generation from a prompt, up to 1024 x 1024.",
        path="/ai/generation/text-to-image/generate-async",
        credits=estimate,
        params=_params(),
    ),
    "image-to-image": ModelSpec(
        key="image-to-image",
        label="Nano Banana: image to image",
        description="Edit or restyle a source image with a prompt.",
        path="/ai/generation/image-to-image/generate-async",
        credits=estimate,
        params=_params(Param("image", "image", label="Source image", required=True, field="image_url",
                             image_as="url", help="The image to edit (PNG, JPEG or WebP).")),
    ),
}

# Provider field -> our parameter, to point a validation error at its input.
FIELDS = {p.provider_field: p.name for spec in MODELS.values() for p in spec.params if p.name not in NOT_SENT}
FIELDS["image_urls"] = "image"
FIELDS["image_size"] = "width"

# Documented error codes -> (kind, field)
CODES = {
    "INVALID_PROMPT": ("validation", "prompt"),
    "INSUFFICIENT_CREDITS": ("insufficient_credits", None),
    "SAFETY_CHECK_FAILED": ("content_blocked", None),
    "RATE_LIMITED": ("rate_limited", None),
    "SERVER_ERROR": ("server_error", None),
}

STATES = {
    "queued": "pending", "pending": "pending", "submitted": "pending",
    "processing": "generating", "running": "generating", "in_progress": "generating", "generating": "generating",
    "completed": "completed", "complete": "completed", "succeeded": "completed", "success": "completed",
    "done": "completed",
    "failed": "failed", "failure": "failed", "error": "failed", "cancelled": "failed", "canceled": "failed",
}

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
}


def parse_estimated_time(value) -> float | None:
    """Seconds from "10s", "1m", "1m 30s", "about 10 seconds", "10-20 s" (the
    upper bound), "00:30", or a bare number of seconds; None if unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    text = str(value).strip().lower()
    clock = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{2})", text)
    if clock:
        h, m, s = (int(x or 0) for x in clock.groups())
        return float(h * 3600 + m * 60 + s)
    # A range keeps its upper bound: "10-20 seconds" -> "20 seconds".
    text = re.sub(r"\d+(?:\.\d+)?\s*(?:-|–|to|~)\s*(?=\d)", "", text)
    total, found = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        if unit and unit not in _UNITS:
            continue
        total += float(number) * _UNITS.get(unit, 1)
        found = True
    return total if found else None


def plausible(seconds: float | None) -> float | None:
    """An estimate to poll by: none for "0s" or a day and more."""
    return seconds if seconds is not None and 0 < seconds < 24 * 3600 else None


def _human(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


class KvidAdapter(Adapter):
    key = "kvid"
    label = "kvid.ai"
    unit = credit_unit("kvid_credit", "kvid credits")
    mode = "async"
    default_base_url = "https://api.kvid.ai"
    sandbox_prefix = "/kvid"
    models = MODELS
    auth_header = "api-key"
    auth_scheme = ""

    def build_request(self, model, params, *, callback_url=None, images=None):
        spec = self.model(model)
        spec.validate(params)
        body = spec.body(params, images)
        for name in NOT_SENT:
            body.pop(name, None)
        return PreparedRequest(
            "POST", self.base_url + spec.path, json=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            auth_header=self.auth_header, auth_scheme=self.auth_scheme,
        )

    def submit(self, model, params, *, callback_url=None, images=None):
        resp, body = self._request(self.build_request(model, params, images=images), model=model)
        data = self.envelope(resp, body)
        job_id = data.get("job_id") or data.get("jobId") or data.get("id")
        if not job_id:
            raise ProviderError("bad_response", "kvid.ai accepted the job but returned no job_id.",
                                status=resp.status_code)
        raw_eta = data.get("estimated_time")
        seconds = parse_estimated_time(raw_eta)
        hint = f"estimated {_human(seconds)}" if seconds is not None else (f"estimated {raw_eta}"[:80] if raw_eta else "")
        return Outcome("pending", job_id=str(job_id), hint=hint, raw=body, expected_seconds=plausible(seconds))

    def _get(self, what: str, job_id: str) -> PreparedRequest:
        return PreparedRequest(
            "GET", f"{self.base_url}/ai/generation/{what}?jobId={quote(str(job_id), safe='')}",
            headers={"Accept": "application/json"}, auth_header=self.auth_header, auth_scheme=self.auth_scheme,
        )

    def status_request(self, model, job_id) -> PreparedRequest:
        return self._get("status", job_id)

    def result_request(self, model, job_id) -> PreparedRequest:
        return self._get("result", job_id)

    def check(self, model, job_id):
        resp, body = self._request(self.status_request(model, job_id))
        outcome = self.parse_status(resp, job_id, body)
        if outcome.state != "completed":
            return outcome
        # 409/425: "completed", but the result is not ready yet.
        resp, body = self._request(self.result_request(model, job_id), accept=(409, 425))
        if resp.status_code in (409, 425):
            return Outcome("generating", job_id=job_id, raw=body)
        return self.parse_result(resp, job_id, body)

    # A status lookup of a job that does not exist is free: a rejected key
    # answers 401, an accepted one "job not found".
    can_check_key = True

    def key_check(self) -> bool:
        resp, body = self._request(self.status_request(next(iter(self.models)), self.key_check_job_id()), check=False)
        return self.key_verdict(resp.status_code, body)

    def parse_status(self, resp, job_id: str = "", body=None) -> Outcome:
        """An Outcome; state "completed" means: now fetch the result."""
        data = self.envelope(resp, body)
        status = str(data.get("status") or "").strip().lower()
        state = STATES.get(status)
        job_id = str(data.get("job_id") or job_id)
        if state is None:
            raise ProviderError("bad_response", f"kvid.ai reported an unknown job status {status!r}.")
        raw = self.json_body(resp) if body is None else body
        if state == "failed":
            return Outcome("failed", job_id=job_id, error=self.failure(data), raw=raw)
        return Outcome(state, job_id=job_id, raw=raw)

    def parse_result(self, resp, job_id: str = "", body=None) -> Outcome:
        data = self.envelope(resp, body)
        raw = self.json_body(resp) if body is None else body
        job_id = str(data.get("job_id") or job_id)
        urls = self.result_urls(data)
        state = STATES.get(str(data.get("status") or "").strip().lower())
        if state == "failed":
            return Outcome("failed", job_id=job_id, error=self.failure(data), raw=raw)
        if not urls:
            if state in ("pending", "generating"):
                return Outcome(state, job_id=job_id, raw=raw)
            raise ProviderError("bad_response", "kvid.ai reports the job completed but gave no image URL.")
        return Outcome("succeeded", job_id=job_id, image_urls=urls, credits_used=self.credits(data), raw=raw)

    @staticmethod
    def result_urls(data: dict) -> list[str]:
        """result_url (string), result_urls (list) and images (objects with url): all, de-duplicated."""
        urls = []
        if isinstance(data.get("result_url"), str):
            urls.append(data["result_url"])
        if isinstance(data.get("result_urls"), list):
            urls.extend(data["result_urls"])
        if isinstance(data.get("images"), list):
            for img in data["images"]:
                urls.append(img.get("url") if isinstance(img, dict) else img)
        return unique(urls)

    @staticmethod
    def credits(data: dict) -> Decimal | None:
        value = data.get("used_credit", data.get("used_credits"))
        if value is None or isinstance(value, bool):
            return None
        try:
            parsed = Decimal(str(value))
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() and parsed >= 0 else None

    def failure(self, data: dict) -> ProviderError:
        """Why a job failed: `error` as an object or a string, or a message field."""
        err = data.get("error")
        code = message = None
        if isinstance(err, dict):
            code, message = err.get("code"), err.get("message")
        elif isinstance(err, str):
            message = err
        code = code or data.get("error_code") or data.get("code")
        message = message or data.get("error_message") or data.get("message") or "kvid.ai could not generate this image."
        kind, field = CODES.get(str(code or "").upper(), ("failed", None))
        if kind not in ("content_blocked", "insufficient_credits"):
            kind, field = "failed", None
        return ProviderError(kind, str(message), code=str(code) if code else "generation_failed", field=field)

    # -- answers --
    def envelope(self, resp, body=None) -> dict:
        """The `data` object of a successful answer (body: as _request
        returned it; None: read resp, raising the mapped error)."""
        if body is None:
            body = self.read(resp)
        if not isinstance(body, dict):
            raise ProviderError("bad_response", "kvid.ai answered with a body that is not a JSON object.",
                                status=resp.status_code)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ProviderError("bad_response", "kvid.ai answered without a data object.", status=resp.status_code)
        return data

    def raise_for_response(self, resp, body, *, model=None):
        """Any of the three error shapes the contract allows ({"error":
        {"code", "message"}}, {"error": CODE, "message"}, {"success":
        false, "code", "message"}); a documented code wins over the status."""
        if 200 <= resp.status_code < 300 and not (isinstance(body, dict) and body.get("success") is False):
            return
        code = message = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                code, message = err.get("code"), err.get("message")
            elif isinstance(err, str):
                code = err
            code = code or body.get("code")
            message = message or body.get("message") or body.get("msg")
        code = str(code).upper() if code not in (None, "") else None
        kind, field = CODES.get(code or "", (None, None))  # else by status ("success": false on a 2xx: bad_response)
        err = self.http_error(resp, body, kind=kind, message=str(message) if message else None, code=code, field=field)
        if err.kind == "validation" and err.field is None:
            err.field = self._field_in(message)
        raise err

    @staticmethod
    def _field_in(message) -> str | None:
        """The parameter a validation message names, e.g. "image_size.width must be ..."."""
        if not message:
            return None
        for provider_field in sorted(FIELDS, key=len, reverse=True):
            if re.search(rf"(?<![\w.]){re.escape(provider_field)}(?![\w])", str(message)):
                return FIELDS[provider_field]
        return None
