"""KIE.ai: an asynchronous aggregator. Submit returns a taskId; the status
comes from GET {service}/record-info, or as a callback we treat as a hint.

Contract: shared/providers/kie.md.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from .base import (
    Adapter,
    ModelSpec,
    Outcome,
    Param,
    PreparedRequest,
    ProviderError,
    kind_for_status,
    parse_retry_after,
    unique,
)

PROMPT = Param(
    "prompt", "longtext", required=True, max_length=5000,
    help="Describe the image. Same seed + prompt gives the same image.",
)
SEED = Param("seed", "int", min=0, max=2**31 - 1, help="Optional. Leave empty for a random image.")

SEEDREAM_SIZES = (
    ("square", "Square"),
    ("square_hd", "Square HD"),
    ("portrait_4_3", "Portrait 3:4"),
    ("portrait_16_9", "Portrait 9:16"),
    ("landscape_4_3", "Landscape 4:3"),
    ("landscape_16_9", "Landscape 16:9"),
)

MODELS = {
    "seedream-v4": ModelSpec(
        key="seedream-v4",
        label="Seedream V4",
        description="Fast and cheap, up to 4K.",
        path="/api/v1/seedream/generate",
        credits=Decimal("3.5"),
        params=(
            PROMPT,
            Param("image_size", "choice", label="Image size", choices=SEEDREAM_SIZES, default="square"),
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
}


def service_of(path: str) -> str:
    """'/api/v1/flux/kontext/generate' -> 'flux/kontext'."""
    parts = path.strip("/").split("/")
    return "/".join(parts[2:-1])


class KieAdapter(Adapter):
    key = "kie"
    label = "KIE.ai"
    mode = "async"
    default_base_url = "https://api.kie.ai"
    sandbox_prefix = "/kie"
    models = MODELS

    def build_request(self, model, params, *, callback_url=None, images=None):
        spec = self.model(model)
        body = spec.body(params, images)
        if callback_url:
            body["callBackUrl"] = callback_url
        return PreparedRequest(
            "POST", self.base_url + spec.path, json=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def submit(self, model, params, *, callback_url=None, images=None):
        resp = self.send(self.build_request(model, params, callback_url=callback_url, images=images))
        data = self._envelope(resp)
        task_id = (data or {}).get("taskId") if isinstance(data, dict) else None
        if not task_id:
            raise ProviderError("bad_response", "KIE.ai accepted the task but returned no taskId.", status=resp.status_code)
        return Outcome("pending", job_id=str(task_id), raw=resp.json())

    def status_request(self, model, job_id) -> PreparedRequest:
        service = service_of(self.model(model).path)
        return PreparedRequest(
            "GET", f"{self.base_url}/api/v1/{service}/record-info?taskId={quote(str(job_id), safe='')}",
            headers={"Accept": "application/json"},
        )

    def check(self, model, job_id):
        return self.parse_status(self.send(self.status_request(model, job_id)))

    def parse_status(self, resp) -> Outcome:
        body = self.json_body(resp)
        # Bare {"taskId", "successFlag", ...} or wrapped {"code", "msg", "data"}.
        if isinstance(body, dict) and "successFlag" not in body and "data" in body:
            record = self._envelope(resp)
        else:
            if resp.status_code != 200:
                self._raise(resp, body)
            record = body
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

    def parse_callback(self, body) -> str | None:
        """The taskId a callback is about; it is only a hint."""
        if isinstance(body, dict):
            data = body.get("data") if isinstance(body.get("data"), dict) else body
            task_id = data.get("taskId") or data.get("task_id")
            return str(task_id) if task_id else None
        return None

    # -- errors --
    def _envelope(self, resp):
        body = self.json_body(resp)
        code = body.get("code") if isinstance(body, dict) else None
        if resp.status_code != 200 or (code is not None and code != 200):
            self._raise(resp, body)
        if not isinstance(body, dict):
            raise ProviderError("bad_response", "KIE.ai answered with a body that is not JSON.", status=resp.status_code)
        return body.get("data")

    def _raise(self, resp, body):
        code = body.get("code") if isinstance(body, dict) else None
        status = code if isinstance(code, int) and code != 200 else resp.status_code
        msg = (body.get("msg") or body.get("message")) if isinstance(body, dict) else None
        msg = str(msg or f"HTTP {resp.status_code}")
        retry = parse_retry_after(resp.headers.get("Retry-After") or resp.headers.get("X-RateLimit-Reset"))
        if status == 429 and retry is None:
            retry = 10.0
        raise ProviderError(kind_for_status(status), msg, status=status, code=str(status), retry_after=retry)
