"""Sandbox for Kawai, an OpenAI-Images-compatible API (shared/providers/kawai.md),
written from the contract and independently of the adapter.

Synchronous: the response holds the images, as signed expiring URLs or as
base64 PNGs. JSON bodies with data-URL images (Kawai) and multipart/form-data
with raw image files (OpenAI, for providers configured that way) are both
accepted.

Tokens: the sandbox keys may call every endpoint; "sandbox-generations-only"
may only call images/generations (403 elsewhere), like a Kawai token granted
for one endpoint.
"""

from __future__ import annotations

import base64
import binascii
from email.parser import BytesParser
from email.policy import HTTP
import io
import re
import secrets
import time

from PIL import Image, UnidentifiedImageError

from .app import Response, marker
from . import images

PREFIX = "/kawai/v1"
RATE_LIMITS = [(30, 60.0)]  # requests per key: 30 a minute
# Tokens granted for some endpoints only.
SCOPED_KEYS = {"sandbox-generations-only": {"images-generations"}}
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_IMAGE_BYTES = 25 * 1024 * 1024
DEFAULT_SIZE = (1024, 1024)

ENDPOINTS = {
    # name: (scope, allowed fields, prompt required)
    "generations": ("images-generations", {"prompt", "model", "n", "size", "quality", "response_format", "user", "style"}, True),
    "edits": ("images-edits", {"prompt", "image", "mask", "model", "n", "size", "response_format", "user"}, True),
    "variations": ("images-variations", {"image", "model", "n", "size", "response_format", "user"}, False),
}


class Invalid(Exception):
    def __init__(self, message, param=None, code="invalid_value", status=400, etype="invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.etype = message, param, code, status, etype


def _err(status, message, *, etype="invalid_request_error", code=None, param=None, headers=None) -> Response:
    return Response({"error": {"message": message, "type": etype, "param": param, "code": code}}, status, headers)


def parse_body(req) -> tuple[dict, dict]:
    """(fields, files) from a JSON or multipart/form-data body. Files are raw bytes."""
    ctype = req.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + req.body)
        if not msg.is_multipart():
            raise Invalid("The multipart body could not be parsed.", code="invalid_multipart")
        fields, files = {}, {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            name = name.removesuffix("[]")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[name] = payload
            else:
                fields[name] = payload.decode("utf-8", "replace")
        return fields, files
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError):
        raise Invalid("We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.", code="invalid_json")
    return body, {}


def _n(value):
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():  # multipart sends text
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"Invalid type for 'n': expected an integer, got {type(value).__name__}.", "n", "invalid_type")
    if not 1 <= value <= 10:
        raise Invalid(f"{value} is not within the allowed range for 'n': 1 to 10.", "n")
    return value


def _size(value, default):
    if value is None:
        return default
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", value) if isinstance(value, str) else None
    if not m:
        raise Invalid(f"Invalid size {value!r}: expected WIDTHxHEIGHT, e.g. '1024x1024'.", "size")
    w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise Invalid(f"Invalid size {value!r}: each side must be between {MIN_SIDE} and {MAX_SIDE} pixels.", "size")
    return w, h


def _image(fields, files, name, required):
    """The decoded image for a field: multipart file, data URL or bare base64."""
    if name in files:
        raw = files[name]
    else:
        value = fields.get(name)
        if value is None or value == "":
            if required:
                raise Invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
            return None
        if not isinstance(value, str):
            raise Invalid(f"'{name}' must be a base64 image (data URL).", name, "invalid_type")
        if value.startswith("data:"):
            head, _, value = value.partition(",")
            if not head.endswith(";base64"):
                raise Invalid(f"'{name}' must be a base64 data URL (data:image/png;base64,...).", name, "invalid_image")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"'{name}' is not valid base64.", name, "invalid_image") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise Invalid(f"'{name}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.", name, "image_too_large")
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise Invalid(f"'{name}' could not be decoded as an image (PNG, JPEG or WebP).", name, "invalid_image") from None
    return raw, img


def validate(endpoint, fields, files) -> dict:
    scope, allowed, prompt_required = ENDPOINTS[endpoint]
    for name in list(fields) + list(files):
        if name not in allowed:
            raise Invalid(f"Unrecognized request argument supplied: {name}", name, "unknown_parameter")
    prompt = fields.get("prompt")
    if prompt_required and (not isinstance(prompt, str) or not prompt.strip()):
        raise Invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if isinstance(prompt, str) and len(prompt) > 4000:
        raise Invalid("'prompt' is too long: at most 4000 characters.", "prompt", "string_above_max_length")
    model = fields.get("model")
    if model is not None and not isinstance(model, str):
        raise Invalid("'model' must be a string.", "model", "invalid_type")
    quality = fields.get("quality")
    if quality is not None and quality not in ("standard", "hd"):
        raise Invalid(f"Invalid value {quality!r} for 'quality': expected 'standard' or 'hd'.", "quality")
    fmt = fields.get("response_format", "url")
    if fmt not in ("url", "b64_json"):
        raise Invalid(f"Invalid value {fmt!r} for 'response_format': expected 'url' or 'b64_json'.", "response_format")
    n = _n(fields.get("n"))
    source = _image(fields, files, "image", required=endpoint != "generations") if endpoint != "generations" else None
    mask = _image(fields, files, "mask", required=False) if endpoint == "edits" else None
    if mask and source and mask[1].size != source[1].size:
        raise Invalid("'mask' must have the same dimensions as 'image'.", "mask", "invalid_mask")
    size = _size(fields.get("size"), source[1].size if source else DEFAULT_SIZE)
    return {
        "prompt": prompt or "", "model": model or "", "n": n, "size": size, "quality": quality or "standard",
        "response_format": fmt,
        "image": base64.b64encode(source[0]).decode() if source else None,
        "mask": base64.b64encode(mask[0]).decode() if mask else None,
    }


def render(endpoint: str, p: dict, seed: str, i: int) -> bytes:
    """One result image: drawn from the prompt, on the input image for edits
    and variations; the mask (white = edit) keeps the rest of the input."""
    w, h = p["size"]
    label = f"Kawai sandbox - {endpoint}" + (f" - {p['model']}" if p.get("model") else "")
    text = p["prompt"] or "variation"
    source = Image.open(io.BytesIO(base64.b64decode(p["image"]))) if p.get("image") else None
    png = images.render(text, seed, w, h, variant=i, label=label, source=source)
    if not p.get("mask") or source is None:
        return png
    edited = Image.open(io.BytesIO(png)).convert("RGB")
    keep = source.convert("RGB").resize((w, h))
    mask = Image.open(io.BytesIO(base64.b64decode(p["mask"]))).convert("L").resize((w, h))
    out = io.BytesIO()
    Image.composite(edited, keep, mask).save(out, "PNG")
    return out.getvalue()


def register(sandbox):
    store = sandbox.store

    def handle(req, endpoint):
        scope = ENDPOINTS[endpoint][0]
        key = req.bearer()
        if not key or not (sandbox.key_ok(key) or key in SCOPED_KEYS):
            return _err(401, "Incorrect API key provided. Send Authorization: Bearer YOUR_TOKEN.",
                        code="invalid_api_key")
        if key in SCOPED_KEYS and scope not in SCOPED_KEYS[key]:
            return _err(403, f"This token does not have access to the '{scope}' endpoint.",
                        etype="permission_error", code="endpoint_not_allowed")
        try:
            fields, files = parse_body(req)
            p = validate(endpoint, fields, files)
        except Invalid as e:
            return _err(e.status, e.message, etype=e.etype, code=e.code, param=e.param)

        wait = store.hit(f"kawai:{sandbox.key_hash(key)}", sandbox.config.rate_limits.get("kawai", RATE_LIMITS))
        if wait is not None:
            return _err(429, "Rate limit reached for requests. Please try again later.", etype="requests",
                        code="rate_limit_exceeded", headers={"Retry-After": str(max(1, round(wait)))})
        marks = marker(p["prompt"])
        if "429" in marks or ("429-once" in marks and store.hit(f"once:{key}:{p['prompt']}", [(1, 3600)]) is None):
            return _err(429, "Rate limit reached for requests (sandbox marker).", etype="requests",
                        code="rate_limit_exceeded", headers={"Retry-After": "1"})
        if "500" in marks:
            return _err(500, "The server had an error while processing your request.", etype="server_error",
                        code="internal_error")
        if "503" in marks:
            return _err(503, "The engine is currently overloaded, please try again later.", etype="server_error",
                        code="service_unavailable")
        if "blocked" in marks:
            return _err(400, "Your request was rejected as a result of our safety system.",
                        code="content_policy_violation", param="prompt")
        if "slow" in marks:
            time.sleep(sandbox.config.latency * 3)

        task_id = "img_" + secrets.token_hex(10)
        data = []
        if p["response_format"] == "b64_json":
            for i in range(p["n"]):
                data.append({"b64_json": base64.b64encode(render(endpoint, p, task_id, i)).decode()})
        else:
            now = time.time()
            store.create_task(
                id=task_id, provider="kawai", model=endpoint, api_key_hash=sandbox.key_hash(key), params=p,
                created=now, finish_at=now, outcome="success", message="", callback_url=None,
            )
            for i in range(p["n"]):
                data.append({"url": sandbox.signed_url(req.root, f"{PREFIX}/files/{task_id}/{i}.png")})
        if endpoint == "generations":
            for item in data:
                item["revised_prompt"] = p["prompt"] + (", in fine detail" if p["quality"] == "hd" else "")
        return Response({"created": int(time.time()), "data": data})

    def file(req):
        if not sandbox.url_valid(req):
            return _err(403, "This image URL has expired or is invalid.", code="url_expired")
        task = store.task(req.match["task"], "kawai")
        i = int(req.match["n"])
        if not task or i >= task["params"]["n"]:
            return _err(404, "No such image.", code="not_found")
        png = render(task["model"], task["params"], task["id"], i)
        return Response(png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    for endpoint in ENDPOINTS:
        sandbox.route("POST", f"{PREFIX}/images/{endpoint}", lambda req, e=endpoint: handle(req, e))
    sandbox.route("GET", PREFIX + r"/files/(?P<task>img_[0-9a-f]+)/(?P<n>\d+)\.png", file)
    sandbox.not_found_kawai = lambda req: _err(404, f"Unknown request URL: {req.method} {req.path}.",
                                               code="unknown_url")
