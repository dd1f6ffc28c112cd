"""Sandbox for KIE.ai (shared/providers/kie.md), written from the contract
and independently of the adapter, so that tests are not circular."""

from __future__ import annotations

from datetime import datetime, timezone
import secrets
import time

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


def _err(code: int, msg: str, headers=None) -> Response:
    return Response({"code": code, "msg": msg, "data": None}, code, headers)


def _dims(ratio, long_side):
    rw, rh = ratio
    if rw >= rh:
        return long_side, max(64, round(long_side * rh / rw))
    return max(64, round(long_side * rw / rh)), long_side


class Invalid(Exception):
    pass


def _int(body, name, lo, hi, default=None):
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}")
    return value


def _choice(body, name, allowed, default=None):
    value = body.get(name, default)
    if value is not None and value not in allowed:
        raise Invalid(f"{name} must be one of: {', '.join(map(str, allowed))}")
    return value


def validate_seedream(body):
    size = _choice(body, "image_size", list(RATIOS), "square")
    res = _choice(body, "image_resolution", list(LONG_SIDE), "1K")
    _int(body, "num_inference_steps", 1, 50, 30)
    return [_dims(RATIOS[size], LONG_SIDE[res])]


# service segment -> (submit path, validator returning a list of (w, h) per image)
SERVICES = {
    "seedream": ("/api/v1/seedream/generate", validate_seedream),
}


def register(sandbox):
    store = sandbox.store

    def auth(req):
        key = req.bearer()
        if not sandbox.key_ok(key):
            return None, _err(401, "You do not have access permissions: missing or invalid API key")
        return key, None

    def submit(req, service):
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
        if not isinstance(prompt, str) or not prompt.strip():
            return _err(422, "prompt is required")
        try:
            _int(body, "seed", 0, 2**32 - 1)
            sizes = SERVICES[service][1](body)
        except Invalid as e:
            return _err(422, str(e))
        callback = body.get("callBackUrl")
        if callback is not None and not (isinstance(callback, str) and callback.startswith(("http://", "https://"))):
            return _err(422, "callBackUrl must be an http(s) URL")

        marks = marker(prompt)
        wait = store.hit(f"kie:{sandbox.key_hash(key)}", sandbox.config.rate_limits.get("kie", RATE_LIMITS))
        if wait is not None:
            return _err(429, "Rate limited: too many requests", {"Retry-After": str(max(1, round(wait)))})
        if "429" in marks or ("429-once" in marks and store.hit(f"once:{key}:{prompt}", [(1, 3600)]) is None):
            return _err(429, "Rate limited: too many requests", {"Retry-After": "1"})
        if "402" in marks:
            return _err(402, "Insufficient Credits")
        if "455" in marks:
            return _err(455, "Service unavailable: maintenance")
        if "500" in marks:
            return _err(500, "Internal server error")

        now = time.time()
        latency = sandbox.config.latency * (5 if "slow" in marks else 1)
        outcome = "creation_fail" if "creation-fail" in marks else "fail" if "fail" in marks else "success"
        task_id = "task_" + secrets.token_hex(10)
        store.create_task(
            id=task_id, provider="kie", model=service, api_key_hash=sandbox.key_hash(key),
            params={**body, "_sizes": sizes, "_root": req.root}, created=now, finish_at=now + latency, outcome=outcome,
            message="", callback_url=callback,
        )
        return Response({"code": 200, "msg": "success", "data": {"taskId": task_id}})

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
                urls = [
                    sandbox.signed_url(req.root, f"{PREFIX}/files/{task['id']}/{i}.png") for i in range(len(task["params"]["_sizes"]))
                ]
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
        return Response({"code": 200, "msg": "success", "data": record(task, req)})

    def file(req):
        if not sandbox.url_valid(req):
            return Response({"code": 403, "msg": "This download URL has expired or is invalid."}, 403)
        task = store.task(req.match["task"], "kie")
        n = int(req.match["n"])
        if not task or task["outcome"] != "success" or n >= len(task["params"]["_sizes"]):
            return _err(404, "Not found")
        p = task["params"]
        w, h = p["_sizes"][n]
        png = images.render(p["prompt"], p.get("seed", task["id"]), w, h, variant=n, label=f"KIE sandbox - {task['model']}")
        return Response(png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    for service, (path, _) in SERVICES.items():
        sandbox.route("POST", PREFIX + path, lambda req, s=service: submit(req, s))
        sandbox.route("GET", f"{PREFIX}/api/v1/{service}/record-info", lambda req, s=service: record_info(req, s))
    sandbox.route("GET", PREFIX + r"/files/(?P<task>task_[0-9a-f]+)/(?P<n>\d+)\.png", file)
    sandbox.not_found_kie = lambda req: _err(404, "Not found: wrong endpoint")

    def callback_body(task):
        if task["outcome"] == "success":
            # The callback carries URLs too, but the app treats it only as a hint.
            urls = [sandbox.signed_url(task["params"]["_root"], f"{PREFIX}/files/{task['id']}/{i}.png")
                    for i in range(len(task["params"]["_sizes"]))]
            return {"code": 200, "msg": "success", "data": {"taskId": task["id"], "resultUrls": urls}}
        return {"code": 501, "msg": "Generation failed", "data": {"taskId": task["id"]}}

    sandbox.callback_senders["kie"] = callback_body


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
