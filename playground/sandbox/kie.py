"""Sandbox for KIE.ai (shared/providers/kie.md), written from the contract
and independently of the adapter, so that tests are not circular.

Every model of the contract has a validator. Models that take an input
image fetch it (over HTTP, like the real service) when the task is created,
refuse it with 422 when it cannot be fetched or decoded, and use it as the
base of the result. Status responses come in the shapes the contract warns
about: wrapped or bare, with imageUrl, resultUrls or response.resultUrls.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
import io
import secrets
import time
from typing import Callable

from .app import Response, marker
from . import images

PREFIX = "/kie"
RATE_LIMITS = [(20, 10.0)]  # submissions per key: 20 per 10 seconds

RATIOS = {
    "square": (1, 1), "square_hd": (1, 1),
    "portrait_4_3": (3, 4), "portrait_16_9": (9, 16),
    "landscape_4_3": (4, 3), "landscape_16_9": (16, 9),
}
LONG_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
# Qwen's named sizes: "square" is the small one, "square_hd" 1024 px.
QWEN_LONG_SIDE = {"square": 512}
FLUX_RATIOS = {"21:9": (21, 9), "16:9": (16, 9), "4:3": (4, 3), "1:1": (1, 1), "3:4": (3, 4), "9:16": (9, 16)}
GPT4O_SIZES = {"1:1": (1024, 1024), "3:2": (1536, 1024), "2:3": (1024, 1536)}

MAX_SIDE = 4096  # results never exceed this (an upscale of a large image is capped)
FETCH_TIMEOUT = 10.0
FETCH_MAX_BYTES = 30 * 1024 * 1024
FETCH_MAX_PIXELS = 64_000_000
KEEP_SIDE = 1024  # the sandbox keeps a copy of an input image at most this large
MAX_INPUTS = 5

# Input fields the contract does not name: the sandbox accepts any of these.
UNNAMED_INPUT = ("imageUrl", "image_urls", "imageUrls", "image_url", "image", "fileUrl", "fileUrls", "inputImage")


class Invalid(Exception):
    status = 422  # a value out of range or not among the choices


class BadType(Invalid):
    status = 400  # a field of the wrong JSON type: bad parameters


def _err(code: int, msg: str, headers=None) -> Response:
    return Response({"code": code, "msg": msg, "data": None}, code, headers)


def _dims(ratio, long_side):
    rw, rh = ratio
    if rw >= rh:
        return long_side, max(64, round(long_side * rh / rw))
    return max(64, round(long_side * rw / rh)), long_side


def _int(body, name, lo, hi, default=None):
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadType(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}")
    return value


def _choice(body, name, allowed, default=None):
    value = body.get(name, default)
    if value is not None and value not in allowed:
        raise Invalid(f"{name} must be one of: {', '.join(map(str, allowed))}")
    return value


def _bool(body, name):
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadType(f"{name} must be a boolean")
    return value


def _is_url(value) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _url(body, name):
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, str):
        raise BadType(f"{name} must be a string")
    if not _is_url(value):
        raise Invalid(f"{name} must be an http(s) URL")
    return [value]


def _urls(body, name):
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadType(f"{name} must be a list of URLs")
    if not 1 <= len(value) <= MAX_INPUTS:
        raise Invalid(f"{name} must hold 1 to {MAX_INPUTS} image URLs")
    if not all(_is_url(v) for v in value):
        raise Invalid(f"{name} must hold http(s) URLs")
    return value


def _unnamed_input(body, required: str | None = None):
    """An input image under a field the docs do not name: a URL or a list of URLs."""
    for name in UNNAMED_INPUT:
        if name in body:
            return name, (_urls if isinstance(body[name], list) else _url)(body, name)
    if required:
        raise Invalid(f"{required}: an input image URL is required (imageUrl or image_urls)")
    return "", []


@dataclass
class Plan:
    """What a valid request will produce."""

    sizes: list = field(default_factory=list)  # (w, h) per result image
    inputs: list = field(default_factory=list)  # input image URLs to fetch
    input_field: str = ""
    op: str = "render"  # render (on the input, if any) | upscale | cutout
    # With an input image: result sizes from the input's (w, h).
    sizes_from_input: Callable | None = None


def validate_seedream(body):
    size = _choice(body, "image_size", list(RATIOS), "square")
    res = _choice(body, "image_resolution", list(LONG_SIDE), "1K")
    _int(body, "num_inference_steps", 1, 50, 30)
    return Plan([_dims(RATIOS[size], LONG_SIDE[res])])


def validate_nano_banana(body):
    model = _choice(body, "model", ["google/nano-banana", "google/nano-banana-edit"], "google/nano-banana")
    width = _int(body, "width", 64, MAX_SIDE, 1024)
    height = _int(body, "height", 64, MAX_SIDE, 1024)
    _int(body, "steps", 20, 60, 30)
    plan = Plan([(width, height)])
    if model == "google/nano-banana-edit":
        plan.input_field, plan.inputs = _unnamed_input(body, required="google/nano-banana-edit")
    return plan


def validate_qwen(body):
    size = _choice(body, "image_size", list(RATIOS), "square")
    _int(body, "num_inference_steps", 1, 50, 30)
    _choice(body, "acceleration_level", ["none", "regular", "high"], "none")
    return Plan([_dims(RATIOS[size], QWEN_LONG_SIDE.get(size, 1024))])


def validate_flux_kontext(body):
    _choice(body, "model", ["flux-kontext-pro", "flux-kontext-max"], "flux-kontext-pro")
    ratio = _choice(body, "aspectRatio", list(FLUX_RATIOS), "16:9")
    _bool(body, "promptUpsampling")
    return Plan([_dims(FLUX_RATIOS[ratio], 1024)], inputs=_url(body, "imageUrl"), input_field="imageUrl")


def validate_gpt4o(body):
    size = _choice(body, "size", list(GPT4O_SIZES), "1:1")
    n = body.get("nVariants", 1)
    if isinstance(n, bool) or not isinstance(n, int):
        raise BadType("nVariants must be an integer")
    _choice(body, "nVariants", [1, 2, 4], 1)
    _bool(body, "isEnhance")
    return Plan([GPT4O_SIZES[size]] * n, inputs=_urls(body, "filesUrl"), input_field="filesUrl")


def validate_mj(body):
    task_type = body.get("taskType")
    if task_type is None:
        raise Invalid("taskType is required")
    _choice(body, "taskType", ["mj_txt2img", "mj_img2img", "mj_video"])
    if task_type == "mj_video":
        raise Invalid("taskType mj_video makes a video; this sandbox renders images only")
    _choice(body, "version", ["7", "6.1", "Niji6"], "7")
    _choice(body, "speed", ["Relax", "Fast", "Turbo"], "Fast")
    _int(body, "stylization", 0, 1000, 100)
    _int(body, "weirdness", 0, 3000, 0)
    plan = Plan([(1024, 1024)] * 4)  # a Midjourney job is a grid of four
    if task_type == "mj_img2img":
        plan.input_field, plan.inputs = _unnamed_input(body, required="mj_img2img")
        plan.sizes_from_input = lambda w, h: [_dims((w, h), 1024)] * 4
    return plan


def _scaled(w, h, factor):
    factor = min(factor, MAX_SIDE / max(w, h))
    return max(1, round(w * factor)), max(1, round(h * factor))


def validate_remove_background(body):
    name, urls = _unnamed_input(body, required="remove-background")
    return Plan(inputs=urls, input_field=name, op="cutout", sizes_from_input=lambda w, h: [_scaled(w, h, 1)])


def validate_upscale(body):
    name, urls = _unnamed_input(body, required="upscale")
    return Plan(inputs=urls, input_field=name, op="upscale", sizes_from_input=lambda w, h: [_scaled(w, h, 2)])


# service segment -> {submit path: validator}. The service segment is also the
# status path: /api/v1/{service}/record-info (two Recraft utilities share one).
SERVICES = {
    "seedream": {"/api/v1/seedream/generate": validate_seedream},
    "nano-banana": {"/api/v1/nano-banana/generate": validate_nano_banana},
    "qwen": {"/api/v1/qwen/generate": validate_qwen},
    "flux/kontext": {"/api/v1/flux/kontext/generate": validate_flux_kontext},
    "gpt4o-image": {"/api/v1/gpt4o-image/generate": validate_gpt4o},
    "mj": {"/api/v1/mj/generate": validate_mj},
    "recraft": {
        "/api/v1/recraft/remove-background": validate_remove_background,
        "/api/v1/recraft/upscale": validate_upscale,
    },
}
# The prompt is required everywhere but for the Recraft utilities.
PROMPT_OPTIONAL = {"recraft"}
# How record-info reports results, per service: the shapes the contract
# lists, so that a client meets all of them.
SHAPES = {
    "recraft": "bare",  # {"taskId", "successFlag", "imageUrl"} without envelope
    "mj": "resultUrls",  # data.resultUrls
    "gpt4o-image": "response",  # data.response.resultUrls only
}  # others: data.imageUrl (the first) and data.response.resultUrls (all)


def fetch_image(url: str, field_name: str):
    """The input image, decoded; raises Invalid with a clear message."""
    import httpx
    from PIL import Image

    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True) as client:
            with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise Invalid(f"{field_name}: could not fetch the image (HTTP {resp.status_code})")
                data = b""
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > FETCH_MAX_BYTES:
                        raise Invalid(f"{field_name}: the image is larger than {FETCH_MAX_BYTES // 2**20} MB")
    except httpx.HTTPError as e:
        raise Invalid(f"{field_name}: could not fetch the image ({type(e).__name__})") from None
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > FETCH_MAX_PIXELS:
            raise Invalid(f"{field_name}: the image has too many pixels")
        img.load()
    except Invalid:
        raise
    except Exception:
        raise Invalid(f"{field_name}: the file at this URL is not an image that can be decoded") from None
    return img


def _keep(img) -> str:
    """A small copy of an input image for the task record (base64 PNG)."""
    copy = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    copy.thumbnail((KEEP_SIDE, KEEP_SIDE))
    buf = io.BytesIO()
    copy.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def cutout(img):
    """Remove the background: pixels close to a corner's colour become
    transparent (the sandbox's stand-in for a segmentation model)."""
    from PIL import Image, ImageChops

    rgb = img.convert("RGB")
    w, h = rgb.size
    alpha = img.getchannel("A") if "A" in img.getbands() else Image.new("L", (w, h), 255)
    for corner in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        diff = ImageChops.difference(rgb, Image.new("RGB", (w, h), rgb.getpixel(corner))).convert("L")
        alpha = ImageChops.subtract(alpha, diff.point(lambda v: 255 if v <= 24 else 0))
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out


def register(sandbox):
    store = sandbox.store

    def auth(req):
        key = req.bearer()
        if not sandbox.key_ok(key):
            return None, _err(401, "You do not have access permissions: missing or invalid API key")
        return key, None

    def submit(req, service, path):
        key, denied = auth(req)
        if denied:
            return denied
        try:
            body = req.json()
        except ValueError:
            return _err(400, "Request body must be JSON")
        if not isinstance(body, dict):
            return _err(400, "Request body must be a JSON object")
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            return _err(400, "prompt must be a string")
        if service not in PROMPT_OPTIONAL and not (prompt or "").strip():
            return _err(422, "prompt is required")
        try:
            _int(body, "seed", 0, 2**32 - 1)
            plan = SERVICES[service][path](body)
        except Invalid as e:
            return _err(e.status, str(e))
        callback = body.get("callBackUrl")
        if callback is not None and not _is_url(callback):
            return _err(422, "callBackUrl must be an http(s) URL")

        prompt = prompt or ""
        marks = marker(prompt)
        wait = store.hit(f"kie:{sandbox.key_hash(key)}", sandbox.config.rate_limits.get("kie", RATE_LIMITS))
        if wait is not None:
            return _err(429, "Rate limited: too many requests", {"Retry-After": str(max(1, round(wait)))})
        if "429" in marks:
            return _err(429, "Rate limited: too many requests", {"Retry-After": "1"})
        if "429-once" in marks and store.hit(f"once:{key}:{prompt}", [(1, 3600)]) is None:
            # Long enough to watch the card count down.
            return _err(429, "Rate limited: too many requests", {"Retry-After": "3"})
        if "402" in marks:
            return _err(402, "Insufficient Credits")
        if "455" in marks:
            return _err(455, "Service unavailable: maintenance")
        if "500" in marks:
            return _err(500, "Internal server error")

        source = None
        if plan.inputs:
            try:
                fetched = [fetch_image(url, plan.input_field) for url in plan.inputs]
            except Invalid as e:
                return _err(e.status, str(e))
            source = _keep(fetched[0])
            if plan.sizes_from_input:
                plan.sizes = plan.sizes_from_input(*fetched[0].size)

        now = time.time()
        latency = sandbox.config.latency * (5 if "slow" in marks else 1)
        outcome = "creation_fail" if "creation-fail" in marks else "fail" if "fail" in marks else "success"
        task_id = "task_" + secrets.token_hex(10)
        label = path.rsplit("/", 1)[-1] if service == "recraft" else service
        store.create_task(
            id=task_id, provider="kie", model=service, api_key_hash=sandbox.key_hash(key),
            params={**body, "_sizes": plan.sizes, "_root": req.root, "_op": plan.op, "_source": source,
                    "_label": label},
            created=now, finish_at=now + latency, outcome=outcome, message="", callback_url=callback,
        )
        return Response({"code": 200, "msg": "success", "data": {"taskId": task_id}})

    def result_urls(task, root):
        return [sandbox.signed_url(root, f"{PREFIX}/files/{task['id']}/{i}.png")
                for i in range(len(task["params"]["_sizes"]))]

    def record(task, req):
        done = time.time() >= task["finish_at"]
        data = {
            "taskId": task["id"],
            "createTime": _iso(task["created"]),
            "successFlag": 0,
        }
        if done:
            data["completeTime"] = _iso(task["finish_at"])
            if task["outcome"] == "success":
                urls = result_urls(task, req.root)
                shape = SHAPES.get(task["model"])
                if shape == "bare":
                    data.update(successFlag=1, imageUrl=urls[0])
                elif shape == "resultUrls":
                    data.update(successFlag=1, resultUrls=urls)
                elif shape == "response":
                    data.update(successFlag=1, response={"resultUrls": urls})
                else:
                    data.update(successFlag=1, imageUrl=urls[0], response={"resultUrls": urls})
            elif task["outcome"] == "creation_fail":
                data.update(successFlag=3, errorCode="creation_failed", errorMessage="Task creation failed (sandbox marker [creation-fail]).")
            else:
                data.update(successFlag=2, errorCode="generation_failed", errorMessage="Generation failed (sandbox marker [fail]).")
        return data

    def record_info(req, service):
        key, denied = auth(req)
        if denied:
            return denied
        task_id = req.query.get("taskId", "")
        task = store.task(task_id, "kie")
        if not task or task["model"] != service or task["api_key_hash"] != sandbox.key_hash(key):
            return _err(404, f"Task not found: {task_id}")
        data = record(task, req)
        if SHAPES.get(service) == "bare":
            return Response(data)
        return Response({"code": 200, "msg": "success", "data": data})

    def file(req):
        if not sandbox.url_valid(req):
            return Response({"code": 403, "msg": "This download URL has expired or is invalid."}, 403)
        task = store.task(req.match["task"], "kie")
        n = int(req.match["n"])
        if not task or task["outcome"] != "success" or n >= len(task["params"]["_sizes"]):
            return _err(404, "Not found")
        return Response(render(task, n), content_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    for service, paths in SERVICES.items():
        for path in paths:
            sandbox.route("POST", PREFIX + path, lambda req, s=service, p=path: submit(req, s, p))
        sandbox.route("GET", f"{PREFIX}/api/v1/{service}/record-info", lambda req, s=service: record_info(req, s))
    sandbox.route("GET", PREFIX + r"/files/(?P<task>task_[0-9a-f]+)/(?P<n>\d+)\.png", file)
    sandbox.not_found_kie = lambda req: _err(404, "Not found: wrong endpoint")

    def callback_body(task):
        if task["outcome"] == "success":
            # The same images as record-info; the app treats a callback only as a hint.
            urls = result_urls(task, task["params"]["_root"])
            return {"code": 200, "msg": "success", "data": {"taskId": task["id"], "resultUrls": urls}}
        return {"code": 501, "msg": "Generation failed", "data": {"taskId": task["id"]}}

    sandbox.callback_senders["kie"] = callback_body


def render(task, n: int) -> bytes:
    """Result image n of a task: the same pixels every time it is fetched."""
    from PIL import Image

    p = task["params"]
    w, h = p["_sizes"][n]
    source = Image.open(io.BytesIO(base64.b64decode(p["_source"]))) if p.get("_source") else None
    op = p.get("_op", "render")
    if op in ("upscale", "cutout") and source is not None:
        out = source.resize((w, h), Image.Resampling.LANCZOS)
        if op == "cutout":
            out = cutout(out)
        buf = io.BytesIO()
        out.save(buf, "PNG")
        return buf.getvalue()
    return images.render(p.get("prompt") or "", p.get("seed", task["id"]), w, h, variant=n,
                         label=f"KIE sandbox - {p.get('_label', task['model'])}", source=source)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
