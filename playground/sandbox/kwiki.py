"""Sandbox for Kwiki AI (shared/providers/kwiki.md): synchronous
text-to-image, written from the contract and independently of the adapter,
so that tests are not circular.

Markers in the prompt: [402] insufficient credits, [403] or [blocked]
content blocked, [429] rate limited, [429-once] rate limited on the first
try only, [500] internal error, [503] or [fail] generation failed (not
charged), [503-once] generation failed on the first try only, [slow] a
response that takes several times longer than usual.
"""

from __future__ import annotations

from datetime import datetime, timezone
import secrets
import time

from . import images
from .app import Response, marker

PREFIX = "/kwiki"
RATE_LIMITS = [(10, 60.0), (100, 3600.0)]  # requests per key
PROMPT_MAX = 1000
QUALITIES = {"fast": (768, 1), "hires": (1536, 2)}  # side in pixels, credits
STYLES = ("realistic", "anime", "nude")
GENDERS = ("female", "male", "trans")
LOOKS = ("ethnicity", "hair_style", "hair_color", "eye_color", "body_type", "breast_size")


class Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def validate(body: dict) -> dict:
    """The request as Kwiki documents it, or raises Invalid(field, message)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("prompt", "prompt is required")
    if len(prompt) > PROMPT_MAX:
        raise Invalid("prompt", f"prompt must be at most {PROMPT_MAX} characters")
    quality = body.get("quality", "fast")
    if quality not in QUALITIES:
        raise Invalid("quality", "quality must be one of: fast, hires")
    style = body.get("style", "realistic")
    if style not in STYLES:
        raise Invalid("style", "style must be one of: " + ", ".join(STYLES))
    appearance = body.get("appearance")
    if appearance is not None:
        if style != "nude":
            raise Invalid("appearance", 'appearance requires style "nude"')
        if not isinstance(appearance, dict):
            raise Invalid("appearance", "appearance must be an object")
        if appearance.get("gender", "female") not in GENDERS:
            raise Invalid("appearance.gender", "gender must be one of: " + ", ".join(GENDERS))
        age = appearance.get("age")
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 18 <= age <= 70):
            raise Invalid("appearance.age", "age must be an integer from 18 to 70")
        for name in LOOKS:
            if name in appearance and not isinstance(appearance[name], str):
                raise Invalid(f"appearance.{name}", f"{name} must be a string")
    caption = body.get("snap_caption")
    if caption is not None and caption is not False:
        if style != "nude":
            raise Invalid("snap_caption", 'snap_caption requires style "nude"')
        if isinstance(caption, dict):
            if not isinstance(caption.get("text"), str) or not caption["text"].strip():
                raise Invalid("snap_caption.text", "snap_caption.text must be a non-empty string")
            if "position" in caption and not isinstance(caption["position"], str):
                raise Invalid("snap_caption.position", "snap_caption.position must be a string")
        elif caption is not True:
            raise Invalid("snap_caption", "snap_caption must be true or an object {text, position}")
    return {"prompt": prompt, "quality": quality, "style": style}


def register(sandbox):
    store = sandbox.store

    def limits():
        return sandbox.config.rate_limits.get("kwiki", RATE_LIMITS)

    def window(bucket: str | None):
        """(requests remaining, epoch when the tightest window frees a slot)."""
        now = time.time()
        best = None
        for count, seconds in limits():
            rows = []
            if bucket:
                rows = store.conn().execute(
                    "SELECT ts FROM hits WHERE bucket=? AND ts>=? ORDER BY ts", (bucket, now - seconds)
                ).fetchall()
            left = max(0, count - len(rows))
            reset = (rows[0]["ts"] if rows else now) + seconds
            if best is None or left < best[0]:
                best = (left, reset)
        left, reset = best or (0, now)
        return left, int(reset + 0.999)

    def reply(body, status, bucket, headers=None):
        left, reset = window(bucket)
        return Response(body, status, {"X-RateLimit-Remaining": str(left), "X-RateLimit-Reset": str(reset),
                                       **(headers or {})})

    def error(code, status, message, bucket=None, **extra):
        return reply({"error": code, "message": message, **extra}, status, bucket)

    def generate(req):
        key = req.bearer()
        if key is None or key == "":
            return error("missing_api_key", 401, "Missing API key: send Authorization: Bearer KEY.")
        if not sandbox.key_ok(key):
            return error("invalid_api_key", 401, "The API key is invalid or has been revoked.")
        bucket = f"kwiki:{sandbox.key_hash(key)}"
        wait = store.hit(bucket, limits())
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            return error("rate_limited", 429, f"Rate limit exceeded. Try again in {seconds} seconds.", bucket,
                         retry_after=seconds)
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return error("invalid_request", 400, "The request body must be JSON.", bucket)
        if not isinstance(body, dict):
            return error("invalid_request", 400, "The request body must be a JSON object.", bucket)
        try:
            task = validate(body)
        except Invalid as e:
            return error("validation_error", 400, str(e), bucket, field=e.field)

        marks = marker(task["prompt"])
        side, cost = QUALITIES[task["quality"]]
        if "429" in marks or ("429-once" in marks and store.hit(f"once429:{key}:{task['prompt']}", [(1, 3600)]) is None):
            return error("rate_limited", 429, "Rate limit exceeded (sandbox marker).", bucket, retry_after=1)
        if "402" in marks:
            return error("insufficient_credits", 402, "Not enough credits for this generation.", bucket,
                         credits_required=cost, credits_available=0)
        if "403" in marks or "blocked" in marks:
            return error("content_blocked", 403, "This prompt was blocked by moderation.", bucket)

        # Generation takes a while: the connection stays open until it is done.
        latency = sandbox.config.latency * (0.5 if task["quality"] == "fast" else 1.0)
        time.sleep(latency * (6 if "slow" in marks else 1))
        if "500" in marks:
            return error("internal_error", 500, "An internal error occurred.", bucket)
        if "503" in marks or "fail" in marks or (
            "503-once" in marks and store.hit(f"once503:{key}:{task['prompt']}", [(1, 3600)]) is None
        ):
            return error("generation_failed", 503, "Generation timed out. Please try again.", bucket)

        now = time.time()
        gen_id = "gen_" + secrets.token_hex(6)
        store.create_task(
            id=gen_id, provider="kwiki", model="t2i", api_key_hash=sandbox.key_hash(key),
            params={**task, "_size": side}, created=now, finish_at=now, outcome="success", message="",
            callback_url=None,
        )
        return reply({
            "id": gen_id, "status": "completed", "type": "t2i",
            "image_url": sandbox.signed_url(req.root, f"{PREFIX}/generations/{gen_id}.png"),
            "credits_used": cost, "created_at": _iso(now),
        }, 200, bucket)

    def file(req):
        if not sandbox.url_valid(req):
            return error("forbidden", 403, "This image URL has expired or is invalid.")
        task = store.task(req.match["id"], "kwiki")
        if not task:
            return error("not_found", 404, "No such image.")
        p = task["params"]
        png = images.render(p["prompt"], task["id"], p["_size"], p["_size"],
                            label=f"Kwiki sandbox - {p['quality']} - {p['style']}")
        return Response(png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    sandbox.route("POST", PREFIX + "/api/v1/generate", generate)
    sandbox.route("GET", PREFIX + r"/generations/(?P<id>gen_[0-9a-f]+)\.png", file)
    sandbox.not_found_kwiki = lambda req: error("not_found", 404, "No such endpoint.")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
