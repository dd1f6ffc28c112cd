"""What an adapter and the job layer hand each other: ImageInput (an input
image, as a URL or its bytes), PreparedRequest (an exact request, without
the key: sent, and shown as "copy as code"), Outcome (what the provider says
about a job right now) and unique (result URLs without repeats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
import json
from typing import Any, Callable

from .errors import ProviderError


@dataclass
class Outcome:
    """What the provider says about a job right now.

    state: "pending" (accepted, not started), "generating", "succeeded" or
    "failed". For a synchronous provider submit() returns a finished Outcome.
    """

    state: str
    job_id: str | None = None
    image_urls: list[str] = field(default_factory=list)
    # Images delivered inline (base64) instead of by URL: (bytes, content type)
    image_bytes: list[bytes] = field(default_factory=list)
    credits_used: Decimal | None = None
    error: ProviderError | None = None
    hint: str = ""  # e.g. "estimated 10s"
    raw: Any = None
    # The provider's own estimate of this job's time, in seconds after the
    # submit (kvid's estimated_time); the job layer polls by it.
    expected_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass
class ImageInput:
    """An input image as an adapter sees it: a signed, expiring URL the
    provider can fetch, and the bytes for providers that want them inline."""

    url: str
    content_type: str
    load: Callable[[], bytes]
    name: str = "image.png"

    def data(self) -> bytes:
        return self.load()

    def data_url(self) -> str:
        import base64

        return f"data:{self.content_type};base64,{base64.b64encode(self.data()).decode()}"

    def as_value(self, how: str):
        if how == "url":
            return self.url
        if how == "url_list":
            return [self.url]
        if how == "data_url":
            return self.data_url()
        raise ValueError(how)


@dataclass
class PreparedRequest:
    """An exact request, without the key: used to send and for "copy as code"."""

    method: str
    url: str
    json: dict | None = None
    headers: dict = field(default_factory=dict)
    # multipart/form-data instead of JSON: fields and (name, (filename, bytes, type)) files
    data: dict | None = None
    files: list | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer "

    def pretty_json(self) -> str:
        return json.dumps(self.json, indent=2, ensure_ascii=False)


def unique(urls) -> list[str]:
    seen, out = set(), []
    for u in urls:
        if isinstance(u, str) and u and u not in seen:
            seen.add(u)
            out.append(u)
    return out
