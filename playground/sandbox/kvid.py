"""Sandbox for kvid.ai (shared/providers/kvid.md), written from the contract
and independently of the adapter, so that tests are not circular.

Where the contract is vague, the sandbox uses each documented reading
somewhere, so that a client must accept them all:
- error bodies: {"success": false, "error": {"code", "message"}} for 400 and
  422, {"success": false, "code", "message"} for 401, 402 and 404, and
  {"error": CODE, "message"} for 429 and 500; [503] answers with plain text;
- several images: text-to-image gives `result_url` plus `images` [{url}],
  image-to-image gives `result_url` plus `result_urls`;
- estimated_time: "4s", "1m", or "about 20 seconds" for [slow] jobs.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
import io
import math
import secrets
import time

from .app import Response, marker
from . import images

PREFIX = "/kvid"
RATE_LIMITS = [(30, 60.0)]  # submissions per key: 30 per minute
CREDITS_PER_MEGAPIXEL = 8  # one megapixel = 1024 x 1024 (the contract's example: 8 credits)
STEPS = (20, 30, 40, 50)
GUIDANCE = (3, 5, 7.5, 10)
FORMATS = {"jpeg": ("JPEG", "image/jpeg", "jpg"), "png": ("PNG", "image/png", "png")}
MIN_SIDE, MAX_SIDE = 256, 1024
MAX_IMAGES = 4
FETCH_MAX_BYTES = 20 * 1024 * 1024
MODELS = {
    "text-to-image": "/ai/generation/text-to-image/generate-async",
    "image-to-image": "/ai/generation/image-to-image/generate-async",
}


# Three error shapes, as the contract's ambiguities allow.
def _nested(status, code, message, headers=None):
    return Response({"success": False, "error": {"code": code, "message": message}}, status, headers)


def _flat(status, code, message, headers=None):
    return Response({"success": False, "code": code, "message": message}, status, headers)


def _plain(status, code, message, headers=None):
    return Response({"error": code, "message": message}, status, headers)


def _ok(data):
    return Response({"success": True, "data": data})


class Invalid(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(body: dict, model: str) -> dict:
    """The job's settings from a request body, or raises Invalid."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("INVALID_PROMPT", "prompt is required and must be a non-empty string")
    neg = body.get("negative_prompt")
    if neg is not None and not isinstance(neg, str):
        raise Invalid("INVALID_PARAMETER", "negative_prompt must be a string")

    size, ratio = body.get("image_size"), body.get("aspect_ratio")
    if size is not None and ratio is not None:
        raise Invalid("INVALID_PARAMETER", "send either image_size or aspect_ratio, not both")
    if size is not None:
        if not isinstance(size, dict):
            raise Invalid("INVALID_IMAGE_SIZE", "image_size must be an object {width, height}")
        for side in ("width", "height"):
            v = size.get(side)
            if not _is_int(v) or not MIN_SIDE <= v <= MAX_SIDE:
                raise Invalid("INVALID_IMAGE_SIZE",
                              f"image_size.{side} must be an integer between {MIN_SIDE} and {MAX_SIDE}")
        width, height = size["width"], size["height"]
    elif ratio is not None:
        width, height = _ratio_size(ratio)
    else:
        width, height = MAX_SIDE, MAX_SIDE
    if width * height > MAX_SIDE * MAX_SIDE:
        raise Invalid("INVALID_IMAGE_SIZE", f"maximum resolution is {MAX_SIDE} x {MAX_SIDE}")

    steps = body.get("num_inference_steps")
    if steps is not None and (not _is_int(steps) or steps not in STEPS):
        raise Invalid("INVALID_PARAMETER", "num_inference_steps must be one of 20, 30, 40, 50")
    guidance = body.get("guidance_scale")
    if guidance is not None and (not _is_number(guidance) or guidance not in GUIDANCE):
        raise Invalid("INVALID_PARAMETER", "guidance_scale must be one of 3, 5, 7.5, 10")
    seed = body.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**32):
        raise Invalid("INVALID_PARAMETER", "seed must be an integer between 0 and 4294967295")
    n = body.get("num_images", 1)
    if not _is_int(n) or not 1 <= n <= MAX_IMAGES:
        raise Invalid("INVALID_PARAMETER", f"num_images must be an integer between 1 and {MAX_IMAGES}")
    fmt = body.get("output_format", "jpeg")
    if fmt not in FORMATS:
        raise Invalid("INVALID_PARAMETER", "output_format must be jpeg or png")
    safety = body.get("enable_safety_checker", True)
    if not isinstance(safety, bool):
        raise Invalid("INVALID_PARAMETER", "enable_safety_checker must be a boolean")

    sources = []
    if model == "image-to-image":
        url, urls = body.get("image_url"), body.get("image_urls")
        if url is not None:
            sources.append(url)
        if urls is not None:
            if not isinstance(urls, list) or not urls:
                raise Invalid("INVALID_IMAGE", "image_urls must be a non-empty list of URLs")
            sources.extend(urls)
        if not sources:
            raise Invalid("INVALID_IMAGE", "image_url (or image_urls) is required for image-to-image")
        for u in sources:
            if not isinstance(u, str) or not u.startswith(("http://", "https://")):
                raise Invalid("INVALID_IMAGE", "image_url must be an http(s) URL")
    return {"prompt": prompt, "seed": seed, "width": width, "height": height, "num_images": n,
            "format": fmt, "sources": sources}


def _ratio_size(ratio) -> tuple[int, int]:
    """'16:9' -> 1024 x 576: the longer side is 1024."""
    try:
        a, b = (int(x) for x in str(ratio).split(":"))
    except ValueError:
        a = b = 0
    if a <= 0 or b <= 0 or max(a, b) > 4 * min(a, b):
        raise Invalid("INVALID_ASPECT_RATIO", "aspect_ratio must look like 16:9, between 1:4 and 4:1")
    if a >= b:
        return MAX_SIDE, max(MIN_SIDE, round(MAX_SIDE * b / a))
    return max(MIN_SIDE, round(MAX_SIDE * a / b)), MAX_SIDE


def fetch_source(url: str) -> str:
    """Fetch an input image; a base64 PNG (at most 512 px) to render on, or raises Invalid."""
    import httpx
    from PIL import Image

    try:
        with httpx.Client(timeout=10.0, follow_redirects=True) as client:
            with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise Invalid("INVALID_IMAGE", f"image_url could not be fetched (HTTP {resp.status_code})")
                data = b""
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > FETCH_MAX_BYTES:
                        raise Invalid("INVALID_IMAGE", "image_url is larger than 20 MB")
    except httpx.HTTPError as e:
        raise Invalid("INVALID_IMAGE", f"image_url could not be fetched ({type(e).__name__})") from None
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        raise Invalid("INVALID_IMAGE", "image_url is not a readable image") from None
    img = img.convert("RGB")
    img.thumbnail((512, 512))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _job_id() -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"img_{int(time.time() * 1000)}_{''.join(secrets.choice(alphabet) for _ in range(9))}"


def _eta(seconds: float, slow: bool) -> str:
    if slow:
        return f"about {max(1, round(seconds))} seconds"
    if seconds >= 60:
        return f"{max(1, round(seconds / 60))}m"
    return f"{max(1, math.ceil(seconds))}s"


def used_credit(p: dict):
    value = round(CREDITS_PER_MEGAPIXEL * p["width"] * p["height"] * p["num_images"] / (1024 * 1024), 2)
    return int(value) if value == int(value) else value


def register(sandbox):
    store = sandbox.store

    def auth(req):
        key = req.headers.get("api-key", "").strip()
        if not sandbox.key_ok(key):
            return None, _flat(401, "UNAUTHORIZED", "Missing or invalid api-key header")
        return key, None

    def submit(req, model):
        key, denied = auth(req)
        if denied:
            return denied
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return _nested(400, "INVALID_REQUEST", "Request body must be JSON")
        if not isinstance(body, dict):
            return _nested(400, "INVALID_REQUEST", "Request body must be a JSON object")
        try:
            job = validate(body, model)
        except Invalid as e:
            return _nested(400, e.code, e.message)

        marks = marker(job["prompt"])
        wait = store.hit(f"kvid:{sandbox.key_hash(key)}", sandbox.config.rate_limits.get("kvid", RATE_LIMITS))
        if wait is not None:
            return _plain(429, "RATE_LIMITED", "Too many requests", {"Retry-After": str(max(1, math.ceil(wait)))})
        if "429" in marks or ("429-once" in marks and store.hit(f"once:{key}:{job['prompt']}", [(1, 3600)]) is None):
            return _plain(429, "RATE_LIMITED", "Too many requests", {"Retry-After": "1"})
        if "402" in marks:
            return _flat(402, "INSUFFICIENT_CREDITS", "Not enough credits for this job")
        if "blocked" in marks:
            return _nested(422, "SAFETY_CHECK_FAILED", "The prompt was rejected by the safety filter")
        if "500" in marks:
            return _plain(500, "SERVER_ERROR", "Internal server error")
        if "503" in marks:
            return Response("Service Temporarily Unavailable", 503, content_type="text/plain")
        try:
            job["sources"] = [fetch_source(u) for u in job["sources"][:1]]
        except Invalid as e:
            return _nested(400, e.code, e.message)

        now = time.time()
        latency = sandbox.config.latency * (5 if "slow" in marks else 1)
        job_id = _job_id()
        store.create_task(
            id=job_id, provider="kvid", model=model, api_key_hash=sandbox.key_hash(key),
            params=job, created=now, finish_at=now + latency,
            outcome="fail" if "fail" in marks else "success", message="", callback_url=None,
        )
        return _ok({"job_id": job_id, "status": "queued", "message": "Job submitted",
                    "estimated_time": _eta(latency, "slow" in marks), "image_type": model})

    def state(task) -> str:
        now = time.time()
        if now >= task["finish_at"]:
            return "completed" if task["outcome"] == "success" else "failed"
        if now < task["created"] + (task["finish_at"] - task["created"]) / 3:
            return "queued"
        return "processing"

    def find(req):
        key, denied = auth(req)
        if denied:
            return None, denied
        job_id = req.query.get("jobId", "")
        if not job_id:
            return None, _nested(400, "INVALID_REQUEST", "jobId is required")
        task = store.task(job_id, "kvid")
        if not task or task["api_key_hash"] != sandbox.key_hash(key):
            return None, _flat(404, "JOB_NOT_FOUND", f"Job not found: {job_id}")
        return task, None

    def status(req):
        task, denied = find(req)
        if denied:
            return denied
        data = {"job_id": task["id"], "status": state(task), "image_type": task["model"],
                "prompt": task["params"]["prompt"], "created_at": _iso(task["created"])}
        if data["status"] == "failed":
            data["error"] = {"code": "GENERATION_FAILED", "message": "Generation failed (sandbox marker [fail])."}
        return _ok(data)

    def result(req):
        task, denied = find(req)
        if denied:
            return denied
        current = state(task)
        if current != "completed":
            return _nested(409, "JOB_NOT_COMPLETED", f"Job is {current}; the result exists once it is completed.")
        p = task["params"]
        fmt, content_type, ext = FORMATS[p["format"]]
        urls = [sandbox.signed_url(req.root, f"{PREFIX}/files/{task['id']}/{i}.{ext}") for i in range(p["num_images"])]
        first = render(task, 0)
        data = {"job_id": task["id"], "status": "completed", "result_url": urls[0],
                "width": p["width"], "height": p["height"], "size": len(first), "type": content_type,
                "used_credit": used_credit(p), "prompt": p["prompt"], "created_at": _iso(task["created"])}
        if len(urls) > 1:
            if task["model"] == "image-to-image":
                data["result_urls"] = urls
            else:
                data["images"] = [{"url": u, "width": p["width"], "height": p["height"]} for u in urls]
        return _ok(data)

    def render(task, n) -> bytes:
        from PIL import Image

        p = task["params"]
        source = Image.open(io.BytesIO(base64.b64decode(p["sources"][0]))) if p["sources"] else None
        seed = p["seed"] if p["seed"] is not None else task["id"]
        return images.render(p["prompt"], seed, p["width"], p["height"], fmt=FORMATS[p["format"]][0], variant=n,
                             label=f"kvid.ai sandbox - {task['model']}", source=source)

    def file(req):
        if not sandbox.url_valid(req):
            return _flat(403, "URL_EXPIRED", "This download URL has expired or is invalid.")
        task = store.task(req.match["job"], "kvid")
        n = int(req.match["n"])
        if not task or state(task) != "completed" or n >= task["params"]["num_images"] \
                or FORMATS[task["params"]["format"]][2] != req.match["ext"]:
            return _flat(404, "NOT_FOUND", "Not found")
        return Response(render(task, n), content_type=FORMATS[task["params"]["format"]][1],
                        headers={"Cache-Control": "private, max-age=60"})

    for model, path in MODELS.items():
        sandbox.route("POST", PREFIX + path, lambda req, m=model: submit(req, m))
    sandbox.route("GET", PREFIX + "/ai/generation/status", status)
    sandbox.route("GET", PREFIX + "/ai/generation/result", result)
    sandbox.route("GET", PREFIX + r"/files/(?P<job>img_\d+_[0-9a-z]+)/(?P<n>\d+)\.(?P<ext>jpg|png)", file)
    sandbox.not_found_kvid = lambda req: _plain(404, "NOT_FOUND", "No such endpoint")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
