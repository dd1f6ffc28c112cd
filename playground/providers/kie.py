"""KIE.ai: an asynchronous aggregator. Submit returns a taskId; the status
comes from GET {service}/record-info, or as a callback we treat as a hint.

Contract: shared/providers/kie.md.
"""

from __future__ import annotations

from decimal import Decimal
import re
from urllib.parse import quote

from playground.lib.units import credit_unit

from .adapter import Adapter
from .errors import ProviderError
from .exchange import Outcome, PreparedRequest, unique
from .params import ModelSpec, Param

PROMPT = Param(
    "prompt", "longtext", required=True, max_length=5000,
    help="Describe the image. Same seed + prompt gives the same image.",
)
SEED = Param("seed", "int", min=0, max=2**31 - 1, random_default=(1, 2**31 - 1),
             help="Optional. Left empty, a random seed is drawn and recorded with the job (see its details).")
# The Recraft utilities work on the image alone (contract, Ambiguities).
UTILITY_PROMPT = Param(
    "prompt", "text", max_length=500, label="Prompt (optional)",
    help="Not needed: this utility works on the image alone. Kept with the job as a caption.",
)

SIZES = (
    ("square", "Square"),
    ("square_hd", "Square HD"),
    ("portrait_4_3", "Portrait 3:4"),
    ("portrait_16_9", "Portrait 9:16"),
    ("landscape_4_3", "Landscape 4:3"),
    ("landscape_16_9", "Landscape 16:9"),
)
SEEDREAM_SIZES = SIZES  # the name other code may know
# OpenAI sizes (WIDTHxHEIGHT) for these named sizes (the OpenAI-compatible API).
OPENAI_SIZES = (
    ("512x512", "square"), ("1024x1024", "square_hd"), ("1024x1536", "portrait_4_3"), ("1536x1024", "landscape_4_3"),
    ("1024x1792", "portrait_16_9"), ("1792x1024", "landscape_16_9"),
)

# --- Credits: one table --------------------------------------------------------
# The contract's figures. Where it gives a range (Qwen 6-8, Flux Kontext 8-12,
# Recraft 1-2 and 2-4) the option picks the entry. Any entry can be overridden
# with the KIE_CREDITS environment variable (JSON), e.g.
# KIE_CREDITS='{"qwen:high": 9, "midjourney": 30}'. 1 credit = $0.005.
# The figure used is recorded on the job (cost_estimate, then credits_used).
CREDITS = {
    "seedream-v4": "3.5",
    "nano-banana": "4",
    "qwen:none": "6",
    "qwen:regular": "7",
    "qwen:high": "8",
    "flux-kontext-pro": "8",
    "flux-kontext-max": "12",
    "gpt4o-image": "10",
    "midjourney": "25",
    # The contract gives ranges (1-2, 2-4) and KIE reports no cost: estimate
    # at the top of the range so that the ledger never under-counts.
    "recraft-remove-background": "2",
    "recraft-upscale": "4",
}

# Input-image fields the contract does not name: our best reading, each
# overridable with KIE_INPUT_FIELDS (JSON), e.g. KIE_INPUT_FIELDS='{"recraft": "image"}'.
INPUT_FIELDS = {
    "nano-banana-edit": "image_urls",  # a list of URLs
    "midjourney": "fileUrls",  # a list of URLs
    "recraft": "imageUrl",  # one URL, as Flux Kontext takes it
}


def _overrides(name: str) -> dict:
    try:
        from django.conf import settings

        return dict(getattr(settings, name, None) or {})
    except Exception:  # Django not configured (a plain script): the built-in table
        return {}


def credits_table() -> dict[str, Decimal]:
    out = {}
    for entry, value in {**CREDITS, **_overrides("KIE_CREDITS")}.items():
        try:
            out[entry] = Decimal(str(value))
        except ArithmeticError:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"KIE_CREDITS: {entry!r} is not a number: {value!r}") from None
    return out


def input_fields() -> dict[str, str]:
    return {**INPUT_FIELDS, **_overrides("KIE_INPUT_FIELDS")}


def _priced(entry):
    """A credits function: `entry` is a table key, or builds one from the params."""
    return lambda params: credits_table()[entry(params) if callable(entry) else entry]


MODELS = {
    "seedream-v4": ModelSpec(
        key="seedream-v4",
        typical_seconds=10,
        label="Seedream V4",
        description="Fast and cheap, up to 4K.",
        path="/api/v1/seedream/generate",
        credits=_priced("seedream-v4"),
        params=(
            PROMPT,
            Param("image_size", "choice", label="Image size", choices=SIZES, default="square", openai="size",
                  openai_values=OPENAI_SIZES),
            Param(
                "image_resolution", "choice", label="Resolution", choices=("1K", "2K", "4K"), default="1K",
                help="Longer side: 1K = 1024 px, 2K = 2048 px, 4K = 4096 px.",
            ),
            Param(
                "num_inference_steps", "int", label="Steps", min=1, max=50, default=30,
                help="More steps: more detail, slower (1-50).",
            ),
            SEED,
        ),
    ),
    "nano-banana": ModelSpec(
        key="nano-banana",
        typical_seconds=8,
        label="Nano Banana",
        description="Google's fast model, good at editing an image with words.",
        path="/api/v1/nano-banana/generate",
        credits=_priced("nano-banana"),
        extra={"input_field": "nano-banana-edit"},
        params=(
            PROMPT,
            Param(
                "model", "choice", label="Mode", required=True, default="google/nano-banana",
                choices=(("google/nano-banana", "Generate"), ("google/nano-banana-edit", "Edit an image")),
                help="Edit: give an image and describe the change.",
            ),
            Param(
                "image", "image", label="Image to edit", required=True, field=INPUT_FIELDS["nano-banana-edit"],
                image_as="url_list", show_if={"model": ("google/nano-banana-edit",)},
            ),
            Param("width", "int", label="Width (px)", min=256, max=2048, default=1024, help="256-2048 pixels.",
                  openai="size", openai_as="width"),
            Param("height", "int", label="Height (px)", min=256, max=2048, default=1024, help="256-2048 pixels.",
                  openai="size", openai_as="height"),
            Param("steps", "int", label="Steps", min=20, max=60, default=30, help="More steps: more detail, slower (20-60)."),
            SEED,
        ),
    ),
    "qwen": ModelSpec(
        key="qwen",
        typical_seconds=10,
        label="Qwen",
        description="Good at text inside images, including Chinese.",
        path="/api/v1/qwen/generate",
        credits=_priced(lambda p: f"qwen:{p.get('acceleration_level') or 'none'}"),
        params=(
            PROMPT,
            Param("image_size", "choice", label="Image size", choices=SIZES, default="square_hd", openai="size",
                  openai_values=OPENAI_SIZES),
            Param(
                "num_inference_steps", "int", label="Steps", min=1, max=50, default=30,
                help="More steps: more detail, slower (1-50).",
            ),
            Param(
                "acceleration_level", "choice", label="Acceleration", default="none", priced=True,
                choices=(("none", "None"), ("regular", "Regular"), ("high", "High")),
                help="Faster generation, some loss of detail; each level has its own price (6, 7, 8 credits).",
            ),
            SEED,
        ),
    ),
    "flux-kontext": ModelSpec(
        key="flux-kontext",
        typical_seconds=15,
        label="Flux Kontext",
        description="Professional editing: give an image and describe the change, or generate from text.",
        path="/api/v1/flux/kontext/generate",
        credits=_priced(lambda p: p.get("model") or "flux-kontext-pro"),
        params=(
            PROMPT,
            Param(
                "model", "choice", label="Model", required=True, default="flux-kontext-pro", priced=True,
                choices=(("flux-kontext-pro", "Kontext Pro (8 credits)"), ("flux-kontext-max", "Kontext Max (12 credits)")),
                help="Max: better at detail and lettering, and dearer.",
            ),
            Param(
                "aspect_ratio", "choice", label="Aspect ratio", field="aspectRatio", default="16:9",
                choices=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"), openai="size", openai_as="ratio",
            ),
            Param(
                "image", "image", label="Image to edit (optional)", field="imageUrl", image_as="url",
                help="Optional. With an image, the prompt describes how to change it (editing mode).",
            ),
            Param(
                "prompt_upsampling", "bool", label="Prompt upsampling", field="promptUpsampling", default=False,
                help="Let the model expand a short prompt.",
            ),
            SEED,
        ),
    ),
    "gpt4o-image": ModelSpec(
        key="gpt4o-image",
        typical_seconds=40,
        label="GPT-4o image",
        description="Clean text in images; one job can return several variants.",
        path="/api/v1/gpt4o-image/generate",
        credits=_priced("gpt4o-image"),
        params=(
            PROMPT,
            Param(
                "size", "choice", label="Aspect ratio", required=True, default="1:1",
                choices=(("1:1", "Square 1:1"), ("3:2", "Landscape 3:2"), ("2:3", "Portrait 2:3")),
                openai="size", openai_as="ratio",
            ),
            Param(
                "n_variants", "choice", label="Variants", field="nVariants", choices=(1, 2, 4), default=1, openai="n",
                help="Images per job; all of them are kept.",
            ),
            Param("is_enhance", "bool", label="Enhance prompt", field="isEnhance", default=False,
                  help="Let the model refine the prompt first."),
            Param(
                "image", "image", label="Reference image (optional)", field="filesUrl", image_as="url_list",
                help="Optional: an image to edit or to take as reference.",
            ),
            SEED,
        ),
    ),
    "midjourney": ModelSpec(
        key="midjourney",
        typical_seconds=60,
        label="Midjourney",
        description="Artistic; each job returns a grid of four images. Slow.",
        path="/api/v1/mj/generate",
        credits=_priced("midjourney"),
        extra={"input_field": "midjourney"},
        params=(
            PROMPT,
            Param(
                "task_type", "choice", label="Task", field="taskType", required=True, default="mj_txt2img",
                choices=(("mj_txt2img", "Text to image"), ("mj_img2img", "Image to image")),
                help=(
                    "Midjourney can also animate an image (mj_video), but that returns a video "
                    "and this playground stores and compares images, so it is not offered."
                ),
            ),
            Param(
                "image", "image", label="Source image", required=True, field=INPUT_FIELDS["midjourney"],
                image_as="url_list", show_if={"task_type": ("mj_img2img",)},
            ),
            Param(
                "version", "choice", label="Version", default="7",
                choices=(("7", "V7"), ("6.1", "V6.1"), ("Niji6", "Niji 6 (anime)")),
            ),
            Param(
                "speed", "choice", label="Speed", default="Fast",
                choices=(("Relax", "Relax (slowest)"), ("Fast", "Fast"), ("Turbo", "Turbo")),
            ),
            Param("stylization", "int", label="Stylization", min=0, max=1000, default=100,
                  help="How strongly Midjourney applies its own style (0-1000)."),
            Param("weirdness", "int", label="Weirdness", min=0, max=3000, default=0,
                  help="Unusual, experimental results (0-3000)."),
            SEED,
        ),
    ),
    "recraft-remove-background": ModelSpec(
        key="recraft-remove-background",
        typical_seconds=5,
        label="Recraft remove background",
        description="Utility: returns the image as a PNG with a transparent background.",
        path="/api/v1/recraft/remove-background",
        credits=_priced("recraft-remove-background"),
        extra={"input_field": "recraft"},
        params=(
            Param("image", "image", label="Image", required=True, field=INPUT_FIELDS["recraft"], image_as="url"),
            UTILITY_PROMPT,
        ),
    ),
    "recraft-upscale": ModelSpec(
        key="recraft-upscale",
        typical_seconds=10,
        label="Recraft upscale 2x",
        description="Utility: returns the image at twice its width and height.",
        path="/api/v1/recraft/upscale",
        credits=_priced("recraft-upscale"),
        extra={"input_field": "recraft"},
        params=(
            Param("image", "image", label="Image", required=True, field=INPUT_FIELDS["recraft"], image_as="url"),
            UTILITY_PROMPT,
        ),
    ),
}


def service_of(path: str) -> str:
    """'/api/v1/flux/kontext/generate' -> 'flux/kontext'."""
    parts = path.strip("/").split("/")
    return "/".join(parts[2:-1])


def field_named_in(spec: ModelSpec, message: str) -> str | None:
    """The parameter a validation message is about ("steps must be between
    20 and 60" -> "steps"), so that the form can highlight it."""
    names = {p.provider_field: p.name for p in spec.params}
    slot = spec.extra.get("input_field")
    if slot and INPUT_FIELDS[slot] in names:
        names[input_fields()[slot]] = names[INPUT_FIELDS[slot]]
    found = [(m.start(), names[f]) for f in names for m in [re.search(rf"\b{re.escape(f)}\b", message)] if m]
    return min(found)[1] if found else None


class KieAdapter(Adapter):
    key = "kie"
    label = "KIE.ai"
    unit = credit_unit("kie_credit", "KIE credits")
    mode = "async"
    default_base_url = "https://api.kie.ai"
    poll_seconds = 5.0  # the documented cadence
    callbacks = True  # callBackUrl
    sandbox_prefix = "/kie"
    models = MODELS

    def build_request(self, model, params, *, callback_url=None, images=None):
        spec = self.model(model)
        spec.validate(params)
        body = spec.body(params, images)
        slot = spec.extra.get("input_field")
        if slot:  # an input-image field the contract leaves unnamed: configurable
            default, wanted = INPUT_FIELDS[slot], input_fields()[slot]
            if wanted != default and default in body:
                body[wanted] = body.pop(default)
        if callback_url:
            body["callBackUrl"] = callback_url
        return PreparedRequest(
            "POST", self.base_url + spec.path, json=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def submit(self, model, params, *, callback_url=None, images=None):
        req = self.build_request(model, params, callback_url=callback_url, images=images)
        resp, body = self._request(req, model=model)
        data = self.envelope(resp, body)
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not task_id:
            raise ProviderError("bad_response", "KIE.ai accepted the task but returned no taskId.", status=resp.status_code)
        return Outcome("pending", job_id=str(task_id), raw=body)

    def status_request(self, model, job_id) -> PreparedRequest:
        service = service_of(self.model(model).path)
        return PreparedRequest(
            "GET", f"{self.base_url}/api/v1/{service}/record-info?taskId={quote(str(job_id), safe='')}",
            headers={"Accept": "application/json"},
        )

    def check(self, model, job_id):
        resp, body = self._request(self.status_request(model, job_id))
        return self.parse_status(resp, body)

    # A record-info lookup of a task that does not exist is free: a rejected
    # key answers 401, an accepted one "not found".
    can_check_key = True

    def key_check(self) -> bool:
        resp, body = self._request(self.status_request(next(iter(self.models)), self.key_check_job_id()), check=False)
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, str) and code.strip().isdigit():
            code = int(code)
        status = code if isinstance(code, int) and code != 200 else resp.status_code  # the body's code mirrors HTTP
        return self.key_verdict(status, body)

    def parse_status(self, resp, body=None) -> Outcome:
        """body: as _request returned it (already checked); None: read resp."""
        if body is None:
            body = self.read(resp)
        # Bare {"taskId", "successFlag", ...} or wrapped {"code", "msg", "data"}.
        bare = not isinstance(body, dict) or "successFlag" in body or "data" not in body
        record = body if bare else self.envelope(resp, body)
        if not isinstance(record, dict) or "successFlag" not in record:
            raise ProviderError("bad_response", "KIE.ai status has no successFlag.", status=resp.status_code)
        flag = record.get("successFlag")
        try:
            flag = int(flag)
        except (TypeError, ValueError):
            raise ProviderError("bad_response", f"Unknown successFlag {flag!r}.") from None
        job_id = str(record.get("taskId") or "")
        if flag == 0:
            return Outcome("generating", job_id=job_id, raw=body)
        if flag == 1:
            urls = self.result_urls(record)
            if not urls:
                raise ProviderError("bad_response", "KIE.ai reports success but no image URL.")
            return Outcome("succeeded", job_id=job_id, image_urls=urls, raw=body)
        if flag in (2, 3):
            msg = (
                record.get("errorMessage") or record.get("failMsg") or record.get("msg")
                or ("Task creation failed." if flag == 3 else "Generation failed.")
            )
            code = str(record.get("errorCode") or ("creation_failed" if flag == 3 else "generation_failed"))
            return Outcome("failed", job_id=job_id, error=ProviderError("failed", str(msg), code=code), raw=body)
        raise ProviderError("bad_response", f"Unknown successFlag {flag!r}.")

    @staticmethod
    def result_urls(record: dict) -> list[str]:
        """imageUrl (string), resultUrls (list) or response.resultUrls: all, de-duplicated."""
        urls = []
        if isinstance(record.get("imageUrl"), str):
            urls.append(record["imageUrl"])
        for key in ("resultUrls", "imageUrls"):
            if isinstance(record.get(key), list):
                urls.extend(record[key])
        response = record.get("response")
        if isinstance(response, dict):
            for key in ("resultUrls", "resultImageUrls"):
                if isinstance(response.get(key), list):
                    urls.extend(response[key])
        return unique(urls)

    @classmethod
    def parse_callback(cls, body) -> str | None:
        """The taskId a callback is about ({"code": 200, "data": {"taskId": ...}});
        it is only a claim."""
        if isinstance(body, dict):
            data = body.get("data") if isinstance(body.get("data"), dict) else body
            task_id = data.get("taskId") or data.get("task_id")
            return str(task_id) if isinstance(task_id, (str, int)) and task_id else None
        return None

    # -- answers --
    def envelope(self, resp, body=None):
        """The `data` of a successful {"code", "msg", "data"} answer."""
        if body is None:
            body = self.read(resp)
        if not isinstance(body, dict):
            raise ProviderError("bad_response", "KIE.ai answered with a body that is not JSON.", status=resp.status_code)
        return body.get("data")

    def raise_for_response(self, resp, body, *, model=None):
        """{"code", "msg"}: the body's code mirrors HTTP and wins (a 200
        may carry code 455). A bare status record ({"taskId",
        "successFlag"}) has no code: only the HTTP status counts."""
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, str) and code.strip().isdigit():
            code = body["code"] = int(code)  # "200" as a string: the same code
        if isinstance(body, dict) and "successFlag" in body:
            code = None
        if resp.status_code == 200 and code in (None, 200):
            return
        status = code if isinstance(code, int) and code != 200 else resp.status_code
        msg = (body.get("msg") or body.get("message")) if isinstance(body, dict) else None
        msg = str(msg or f"HTTP {resp.status_code}")
        field = field_named_in(self.model(model), msg) if model and status in (400, 422) else None
        raise self.http_error(resp, body, status=status, message=msg, code=str(status), field=field)
