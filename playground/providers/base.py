"""What every provider adapter shares: declared parameters, one error type,
and the results the job layer understands.

An adapter is one module with one class: it builds the request (after
ModelSpec.validate), parses the response and reads its provider's error body
in the one hook, raise_for_response. Sending, timeouts, transport errors, the
status -> error kind mapping and rate-limit waits live here (Adapter._request,
http_error), as does the one client per adapter class per process. The job
layer never asks which provider it is talking to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
import json
import math
import os
import re
import threading
from typing import Any, Callable
import weakref

import httpx

from playground.lib import text
from playground.lib.units import Unit, credit_unit

# --- Errors --------------------------------------------------------------------

# One taxonomy for all providers. "hint" is what the user can do about it.
ERROR_KINDS = {
    "auth": "Check the API key for this provider (team settings).",
    "validation": "Correct the highlighted field and submit again.",
    "insufficient_credits": "Top up the provider account, or pick a cheaper model.",
    "content_blocked": "The provider's moderation refused the prompt; rephrase it.",
    "rate_limited": "The provider asked us to slow down; the job retries by itself.",
    "unavailable": "The provider is unreachable or in maintenance; try again later.",
    "server_error": "The provider had an internal error; try again.",
    "timeout": "The provider did not answer in time.",
    "not_found": "The provider does not know this job or endpoint.",
    "failed": "The provider could not generate this image; try again or change the prompt.",
    "bad_response": "The provider answered with something we could not read.",
    "unknown_outcome": (
        "The request may have reached the provider, so it was not sent again "
        "(that could charge twice). Check the provider's dashboard, or retry."
    ),
    "download": "The result image could not be fetched or is not a valid image.",
    "config": "The provider credential or base URL could not be used; ask a team owner to check it.",
    "not_sent": (
        "Something failed inside the playground while preparing the request, so nothing was sent to the "
        "provider (and nothing charged); try again."
    ),
    "internal": (
        "Something failed inside the playground (not at the provider); the job was retried. "
        "The provider may still have charged for it: check its dashboard before retrying."
    ),
}

# Kinds where the request was refused before any work: safe to send again.
RETRYABLE = {"rate_limited", "unavailable", "server_error"}
# A status check changes nothing at the provider: these are worth repeating
# even when the request may have been received.
POLL_RETRYABLE = RETRYABLE | {"timeout"}


class ProviderError(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        details: dict | None = None,
    ):
        assert kind in ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code or kind
        self.field = field
        self.retry_after = retry_after
        # True when the request may have reached the provider (a read
        # timeout, a dropped connection): resending could charge twice.
        self.maybe_sent = maybe_sent
        self.details = details or {}

    @property
    def hint(self) -> str:
        return ERROR_KINDS[self.kind]

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE and not self.maybe_sent

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def kind_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status in (400, 422):
        return "validation"
    if status == 402:
        return "insufficient_credits"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status in (455, 502, 503, 504):
        return "unavailable"
    if status >= 500:
        return "server_error"
    return "bad_response"


def parse_retry_after(value: str | float | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a hint that may be seconds-from-now or an epoch."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(str(value)).timestamp()
        except (TypeError, ValueError):
            return None
        seconds = when - (now if now is not None else _now())
        return max(seconds, 0.0)
    if seconds > 1e9:  # an epoch timestamp, not a duration
        seconds -= now if now is not None else _now()
    return max(seconds, 0.0)


# Seconds to wait after a 429 that carries no hint (no retry_after in the
# body, no Retry-After or X-RateLimit-Reset header), the same for every
# provider: no contract gives a number (each says "wait, then retry" or
# "honour Retry-After", and the sandboxes always send a hint). 10 s lets a
# per-second or burst limit refill without holding a job back for long; a
# per-minute limit (Kwiki's 10/minute) is held by the job layer before
# sending (Adapter.rate_limits), so a hint-less 429 there is a surprise, and
# a repeated one waits again. A provider whose contract documents a wait sets
# Adapter.default_retry_after, with the reason in a comment.
DEFAULT_RETRY_AFTER = 10.0


def retry_hint(resp, body=None) -> float | None:
    """A 429's wait hint, wherever the provider put it: a body retry_after,
    or the Retry-After or X-RateLimit-Reset header (seconds or epoch)."""
    if isinstance(body, dict) and body.get("retry_after") not in (None, ""):
        hint = parse_retry_after(body.get("retry_after"))
        if hint is not None:
            return hint
    for header in ("Retry-After", "X-RateLimit-Reset"):
        hint = parse_retry_after(resp.headers.get(header))
        if hint is not None:
            return hint
    return None


def _now() -> float:
    import time

    return time.time()


# --- Declared parameters -----------------------------------------------------------


# Length limits for free text where the contract is silent: 4000 characters
# for a prompt-like text (OpenAI's image prompt limit, generous for any
# description), 500 for a one-line text.
DEFAULT_MAX_LENGTH = {"longtext": 4000, "text": 500}


@dataclass(frozen=True)
class Param:
    """One model parameter, declared once. It drives the form field, its
    validation, the request body, the cost estimate and "copy as code"."""

    name: str
    kind: str  # text, longtext, int, float, bool, choice
    label: str = ""
    required: bool = False
    choices: tuple = ()  # values, or (value, label) pairs
    min: float | None = None
    max: float | None = None
    default: Any = None
    help: str = ""
    field: str | None = None  # provider's field name; defaults to name
    max_length: int | None = None
    # Show (and send) only when another parameter has one of these values.
    show_if: dict[str, tuple] | None = None
    # For kind "image": how the provider wants it: "url" (a signed URL the
    # provider fetches), "url_list" (a one-item list of such URLs), or
    # "data_url" (base64 inline, data:image/png;base64,...).
    image_as: str = "url"
    # For kind "choice": values that are adult content (gated per team).
    adult_values: tuple = ()
    # For kind "text": a regular expression the whole value must match
    # (e.g. r"\d+x\d+"). Choices on a "text" param are suggestions only.
    pattern: str | None = None
    # True when the value changes the price: the live estimate sends only
    # these (and the parameters their show_if depends on), never the prompt.
    priced: bool = False
    # For a seed: (lo, hi). Left empty, a value is drawn in this range when
    # the job is created, stored with the job and sent, so it can be reproduced.
    random_default: tuple[int, int] | None = None
    # The OpenAI Images request field this parameter answers to in the
    # OpenAI-compatible API (playground/api): "n", "size", "quality",
    # "style", "background" or "output_format". openai_as says how the
    # OpenAI value becomes this parameter's: "value" (as it is, or through
    # the openai_values pairs (OpenAI value, ours)), "width" / "height" (that
    # part of WIDTHxHEIGHT), "ratio" (WIDTHxHEIGHT reduced to a "W:H" choice).
    openai: str = ""
    openai_as: str = "value"
    openai_values: tuple = ()

    def __post_init__(self):
        # Every free-text field has a limit: the contract's where it gives one
        # (declared with the param), else these defaults.
        if self.kind in ("text", "longtext") and self.max_length is None:
            object.__setattr__(self, "max_length", DEFAULT_MAX_LENGTH[self.kind])

    @property
    def provider_field(self) -> str:
        return self.field or self.name

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def choice_pairs(self) -> list[tuple[Any, str]]:
        return [c if isinstance(c, tuple) else (c, str(c)) for c in self.choices]

    def applies(self, values: dict) -> bool:
        if not self.show_if:
            return True
        return all(values.get(k) in allowed for k, allowed in self.show_if.items())


@dataclass(frozen=True)
class ModelSpec:
    key: str  # our key, used in URLs
    label: str
    params: tuple[Param, ...]
    path: str = ""  # submit path, relative to the base URL
    credits: Callable[[dict], Decimal] | Decimal = Decimal("0")
    description: str = ""
    extra: dict = field(default_factory=dict)
    # A model-specific rule the declarations cannot say (e.g. Kwiki refuses
    # a prompt of spaces only): called by validate() after the declared
    # checks with the params; raises ProviderError("validation", field=...).
    extra_check: Callable[[dict], None] | None = None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params if p.default is not None}

    def priced_params(self) -> list[Param]:
        """The parameters that change the price, and those their show_if
        depends on (a size that applies only in one mode needs the mode)."""
        names = {p.name for p in self.params if p.priced}
        grown = True
        while grown:
            deps = {k for p in self.params if p.name in names and p.show_if for k in p.show_if}
            grown = not deps <= names
            names |= deps
        return [p for p in self.params if p.name in names]

    def check_text(self, params: dict) -> None:
        """Refuse text that is not valid Unicode or holds a NUL (the one
        rule, lib/text.py) in any parameter, applying or not, whoever built
        the params: it could be neither stored nor sent."""
        found = text.first_problem(params)
        if found is None:
            return
        name = found.path[0]
        if found.is_key and len(found.path) == 1:
            raise ProviderError("validation", f"The parameter name {text.shown(name)!r} {found.problem}.")
        declared = next((p for p in self.params if p.name == name), None)
        title = declared.title if declared else text.shown(str(name))
        raise ProviderError("validation", f"{title} {found.problem}.", field=str(name))

    def check_limits(self, params: dict) -> None:
        """Refuse free text over its limit, whoever built the params."""
        for p in self.params:
            value = params.get(p.name)
            if p.kind in ("text", "longtext") and isinstance(value, str) and p.max_length and len(value) > p.max_length:
                raise ProviderError(
                    "validation", f"{p.title} is longer than {p.max_length} characters ({len(value)}).", field=p.name)

    def validate(self, params: dict) -> None:
        """Refuse, before anything is sent, what the declarations forbid:
        a missing required value, a value of the wrong type, a choice not
        offered, a number out of range, text over its length or not matching
        its pattern. Parameters whose show_if does not hold are not sent, so
        not checked (but for their length: check_limits holds for all).
        The first problem, in declared order, raises
        ProviderError("validation") naming the field; before any, text that
        is not valid Unicode, in any parameter (check_text).
        The form checks the same declarations; this holds for any caller."""
        self.check_text(params)
        for p in self.params:
            if not p.applies(params):
                continue
            value = params.get(p.name)
            if value is None or value == "":
                # A declared default stands in (the provider's own default);
                # an image arrives beside params (see body()).
                if p.required and p.default is None and p.kind != "image":
                    raise ProviderError("validation", f"{p.title} is required.", field=p.name)
                continue
            problem = _problem(p, value)
            if problem:
                raise ProviderError("validation", f"{p.title} {problem}.", field=p.name)
        self.check_limits(params)  # also text that is not sent
        if self.extra_check is not None:
            self.extra_check(params)

    def with_random_defaults(self, params: dict) -> dict:
        """params, with a drawn value for each empty parameter that has a
        random_default (a seed) and applies."""
        import secrets

        out = dict(params)
        for p in self.params:
            if p.random_default and out.get(p.name) in (None, "") and p.applies(out):
                lo, hi = p.random_default
                out[p.name] = lo + secrets.randbelow(hi - lo + 1)
        return out

    def body(self, params: dict, images: dict[str, "ImageInput"] | None = None) -> dict:
        """Provider request fields for validated params (declared order).

        Image parameters hold an input image's id in params; `images` maps
        the parameter name to the ImageInput the job layer resolved."""
        self.check_text(params)
        self.check_limits(params)
        out = {}
        for p in self.params:
            value = params.get(p.name)
            if value is None or value == "" or not p.applies(params):
                continue
            if p.kind == "image":
                img = (images or {}).get(p.name)
                if img is None:
                    raise ProviderError("validation", f"The input image for {p.title} is missing.", field=p.name)
                value = img.as_value(p.image_as)
            # A dotted field ("appearance.age") goes into a nested object.
            *parents, leaf = p.provider_field.split(".")
            target = out
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        return out

    def is_adult(self, params: dict) -> bool:
        """True when a parameter holds one of its declared adult values."""
        return any(p.adult_values and params.get(p.name) in p.adult_values for p in self.params)

    def image_params(self) -> list[Param]:
        return [p for p in self.params if p.kind == "image"]

    @property
    def default_estimate(self) -> Decimal:
        return self.estimate(self.defaults())

    def estimate(self, params: dict) -> Decimal:
        c = self.credits
        return Decimal(c(params)) if callable(c) else Decimal(c)


def _bounds(p: Param) -> str:
    if p.min is not None and p.max is not None:
        return f" from {p.min:g} to {p.max:g}"
    if p.min is not None:
        return f" of at least {p.min:g}"
    if p.max is not None:
        return f" of at most {p.max:g}"
    return ""


def _in_range(p: Param, value) -> bool:
    return (p.min is None or value >= p.min) and (p.max is None or value <= p.max)


def _problem(p: Param, value) -> str | None:
    """What is wrong with a non-empty value of p ("must be ..."), or None."""
    if p.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not _in_range(p, value):
            return f"must be a whole number{_bounds(p)}"
    elif p.kind == "float":
        # NaN and Infinity (JSON's literals, which json.loads takes) are no number a request can carry.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _in_range(p, value) \
                or (isinstance(value, float) and not math.isfinite(value)):
            return f"must be a number{_bounds(p)}"
    elif p.kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif p.kind == "choice":
        allowed = [v for v, _ in p.choice_pairs()]
        if isinstance(value, bool) or value not in allowed:
            return "must be one of: " + ", ".join(str(v) for v in allowed)
    elif p.kind in ("text", "longtext"):
        if not isinstance(value, str):
            return "must be text"
        if p.max_length and len(value) > p.max_length:  # check_limits' words
            return f"is longer than {p.max_length} characters ({len(value)})"
        # (choices on a text param are suggestions only)
        if p.pattern and not re.fullmatch(p.pattern, value):
            example = p.default or (p.choice_pairs()[0][0] if p.choices else None)
            return f"must look like {example}" if example else "is not in the expected format"
    return None


# --- Results --------------------------------------------------------------------


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


# --- One long-lived client per process and adapter class -------------------------------

# Building an httpx.Client builds an SSL context (~20 ms of CPU). Every
# adapter of one class in one process shares one client, created on first
# use. Keyed by process id too: a process forked after creating one (a
# preloaded gunicorn, a worker pool) must never use its parent's sockets.
_clients: "weakref.WeakKeyDictionary[type, tuple[int, httpx.Client]]" = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A fork while another thread held the lock would leave it held forever
    # in the child; the parent's clients are not the child's either.
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def process_client(cls: type["Adapter"]) -> httpx.Client:
    """The one client of this adapter class in this process."""
    pid = os.getpid()
    entry = _clients.get(cls)
    if entry is None or entry[0] != pid:
        with _clients_lock:
            entry = _clients.get(cls)
            if entry is None or entry[0] != pid:  # none yet, or the parent's: never reuse that
                from playground.lib.net.guard import plain_client

                # One long-lived client per process and provider, never one per task.
                entry = (pid, plain_client(timeout=cls.timeout, follow_redirects=False))
                _clients[cls] = entry
    return entry[1]


# --- The adapter base ---------------------------------------------------------------


class Adapter:
    """One provider. A subclass declares its models and builds requests and
    reads answers; the base owns the HTTP path (healthchecks' HttpTransport
    pattern):

        _request(req)  sends with this adapter's timeouts, turns transport
                       errors into ProviderError, then hands the answer to
        raise_for_response(resp, body)  THE one hook: a provider reads its
                       own error body there and raises http_error(...),
                       which maps the status (kind_for_status), reads the
                       rate-limit hint (retry_hint) and applies the one
                       default wait (DEFAULT_RETRY_AFTER).

    Parameters are checked by ModelSpec.validate in build_request."""

    do_not_call_in_templates = True  # templates use the class itself
    key = ""
    label = ""
    mode = "async"  # or "sync"
    default_base_url = ""
    sandbox_prefix = ""  # the sandbox serves this provider under SANDBOX_URL + prefix
    models: dict[str, ModelSpec] = {}
    auth_header = "Authorization"
    auth_scheme = "Bearer "
    # Documented request limits per key, as (count, seconds) windows; the job
    # layer holds them across all worker processes.
    rate_limits: tuple[tuple[int, float], ...] = ()
    # Seconds to wait after a 429 without a hint (see DEFAULT_RETRY_AFTER).
    default_retry_after: float = DEFAULT_RETRY_AFTER
    # What its prices and charges are counted in: its own credits, or a
    # currency (lib/units.py). Every ledger entry stores the unit's code.
    unit: Unit = credit_unit("credit", "credits")
    # Whether the provider POSTs to a callback URL when a job ends (a hint only).
    callbacks = False
    # Seconds between status checks (an async provider's documented cadence).
    poll_seconds = 3.0
    # Seconds: generous read timeout for synchronous generation.
    timeout = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)

    def __init__(self, *, base_url: str, api_key: str, client: httpx.Client | None = None,
                 timeout: httpx.Timeout | None = None):
        """client: a caller's own (closed by the caller), or the guarded one
        shared by all adapters for team base URLs; None: this class's one
        client in this process (process_client). timeout: for every request
        of this adapter instead of the class's (e.g. a short key check),
        without a client of its own."""
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # Requests this adapter has handed to its client (counted before the
        # client is called): 0 means nothing it did can have reached the provider.
        self.requests_started = 0
        self.client = client if client is not None else process_client(type(self))
        # A client shared by all adapters (team base URLs) gets this
        # adapter's timeouts on each request; a caller's own keeps its own.
        shared = client is None or getattr(client, "shared_by_adapters", False)
        self._request_timeout = timeout or (self.timeout if shared else httpx.USE_CLIENT_DEFAULT)

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.base_url}>"

    @classmethod
    def model(cls, key: str) -> ModelSpec:
        try:
            return cls.models[key]
        except KeyError:
            raise ProviderError("not_found", f"Unknown model {key!r} for {cls.label}.") from None

    @staticmethod
    def validate(spec: ModelSpec, params: dict) -> None:
        """The model's declared checks (ModelSpec.validate), for callers
        that hold the adapter class."""
        spec.validate(params)

    # Adapters implement these three. `images` maps an image parameter's
    # name to its ImageInput (see ModelSpec.body). build_request starts with
    # spec.validate(params).
    def build_request(self, model: str, params: dict, *, callback_url: str | None = None,
                      images: dict[str, ImageInput] | None = None) -> PreparedRequest:
        raise NotImplementedError

    def submit(self, model: str, params: dict, *, callback_url: str | None = None,
               images: dict[str, ImageInput] | None = None) -> Outcome:
        raise NotImplementedError

    def check(self, model: str, job_id: str) -> Outcome:
        raise NotImplementedError

    # Whether key_check() can tell an accepted key from a rejected one with a
    # call that costs nothing (a status lookup of a job id that does not exist).
    # Without one, the first job tells.
    can_check_key = False

    def key_check(self) -> bool:
        """True: the provider accepted the key; False: it rejected it (401/403).
        Raises ProviderError when the answer tells neither (unreachable,
        rate limited, a server error, not this provider's API)."""
        raise NotImplementedError

    def key_verdict(self, status: int, body: Any) -> bool:
        """What a free call's answer says about the key (see key_check)."""
        if status in (401, 403):
            return False
        kind = kind_for_status(status)
        if kind in RETRYABLE:
            raise self.http_error(None, body, status=status, kind=kind, message=f"{self.label} answered HTTP {status}.")
        if not isinstance(body, dict):
            raise ProviderError("bad_response", f"The base URL answered HTTP {status} with something that is not "
                                f"the {self.label} API.", status=status)
        return True

    @staticmethod
    def key_check_job_id() -> str:
        import uuid

        return f"key-check-{uuid.uuid4().hex}"

    @classmethod
    def parse_callback(cls, body: Any) -> str | None:
        """The provider job id a callback body names (only a claim: the job
        layer confirms it with a status call). None: nothing usable."""
        return None

    # -- The one HTTP path ------------------------------------------------------------

    def _request(self, req: PreparedRequest, *, model: str | None = None, accept: tuple[int, ...] = (),
                 check: bool = True) -> tuple[httpx.Response, Any]:
        """Send req and return (response, JSON body or None) when the answer
        is a success; any other answer raises the one ProviderError through
        raise_for_response. accept: statuses the caller reads itself (e.g.
        "not ready yet"); check=False: the caller judges every answer (a key
        check). model: the model asked about, for pointing a validation
        error at its field."""
        resp = self._send(req)
        body = self.json_body(resp)
        if check and resp.status_code not in accept:
            self.raise_for_response(resp, body, model=model)
        return resp, body

    def _send(self, req: PreparedRequest) -> httpx.Response:
        """One request with the key and this adapter's timeouts; a transport
        failure becomes ProviderError, with maybe_sent when the request may
        have reached the provider (resending could charge twice). No retry
        here: the job layer decides (a submit that maybe_sent never is).

        The body is made first, apart from the sending (_body): what fails
        there (text that is not valid Unicode, a value JSON cannot carry) is
        a ProviderError that was never sent, as is what httpx refuses while
        it builds the request from the URL and headers."""
        headers = {**req.headers, req.auth_header: f"{req.auth_scheme}{self._api_key}"}
        body = self._body(req, headers)
        from playground.lib.net.addresses import EgressRefused

        self.requests_started += 1
        try:
            if req.files is not None or req.data is not None:
                return self.client.request(req.method, req.url, data=req.data, files=req.files, headers=headers,
                                           timeout=self._request_timeout)
            return self.client.request(req.method, req.url, content=body, headers=headers,
                                       timeout=self._request_timeout)
        except EgressRefused as e:
            # Refused before anything (the key included) was sent.
            raise ProviderError("config", f"The base URL for {self.label} is refused: {e}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as e:
            # httpx builds the request (URL, headers: the key) before it
            # connects: nothing was sent. (The body was encoded in _body.)
            # The exception's text is not shown: it could quote the key.
            raise ProviderError("config", f"The request to {self.label} could not be made: the base URL or the API "
                                f"key cannot be used in a request ({type(e).__name__}). Nothing was sent.") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise ProviderError("unavailable", f"Could not connect to {self.label}: {type(e).__name__}.") from None
        except httpx.TimeoutException as e:
            raise ProviderError(
                "timeout", f"{self.label} did not answer in time ({type(e).__name__}).", maybe_sent=True
            ) from None
        except httpx.HTTPError as e:
            raise ProviderError(
                "unavailable", f"Connection to {self.label} failed: {type(e).__name__}.", maybe_sent=True
            ) from None

    def _body(self, req: PreparedRequest, headers: dict) -> bytes | None:
        """The JSON body as bytes (as httpx would make it, so it is made once),
        with its Content-Type added to headers; None for no body or a
        multipart one (httpx makes that from text checked here). Raises
        ProviderError (never sent) for what cannot go into a request."""
        if req.files is not None or req.data is not None:
            # (field name, file name) of each file
            names = [(field, spec[0]) for field, spec in (req.files or [])]
            found = text.first_problem({"data": req.data or {}, "files": names})
            if found is not None:
                where = text.Found(found.path[1:], found.problem, found.is_key)
                what = "a file's name" if found.path[0] == "files" else f"`{where.where()}`"
                raise ProviderError("validation", f"The request to {self.label} could not be made: {what} "
                                    f"{found.problem}. Nothing was sent.")
            return None
        if req.json is None:
            return None
        found = text.first_problem(req.json)
        if found is not None:
            raise ProviderError("validation", f"The request to {self.label} could not be made: "
                                f"`{found.where()}` {found.problem}. Nothing was sent.")
        try:
            body = json.dumps(req.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as e:  # a value JSON cannot carry (NaN, an object)
            raise ProviderError("not_sent", f"The request to {self.label} could not be made: {e}. "
                                "Nothing was sent.") from None
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return body

    def read(self, resp: httpx.Response, *, model: str | None = None) -> Any:
        """The JSON body of an answer (already received) that is a success;
        else raises the one ProviderError (raise_for_response)."""
        body = self.json_body(resp)
        self.raise_for_response(resp, body, model=model)
        return body

    def raise_for_response(self, resp: httpx.Response, body: Any, *, model: str | None = None) -> None:
        """THE hook: raise `self.http_error(...)` if this answer is an error.
        A provider overrides it to read its own error body (code, message,
        field) and passes what it found; the base fills in the rest. The
        default: any status outside 2xx is an error, mapped by status."""
        if not 200 <= resp.status_code < 300:
            raise self.http_error(resp, body)

    def http_error(self, resp: httpx.Response | None, body: Any = None, *, status: int | None = None,
                   kind: str | None = None, message: str | None = None, code: str | None = None,
                   field: str | None = None, details: dict | None = None) -> ProviderError:
        """The one ProviderError for an error answer. What the provider's
        body said wins; the rest comes from the status: the kind
        (kind_for_status), and for a rate limit the wait: the provider's
        hint (retry_hint: body retry_after, Retry-After, X-RateLimit-Reset)
        or else this adapter's default_retry_after."""
        if status is None:
            status = resp.status_code if resp is not None else 0
        kind = kind or kind_for_status(status)
        retry = None
        if kind == "rate_limited":
            retry = retry_hint(resp, body) if resp is not None else None
            if retry is None:
                retry = self.default_retry_after
        return ProviderError(kind, message or f"{self.label} answered HTTP {status}.", status=status,
                             code=code or str(status), field=field, retry_after=retry, details=details)

    @staticmethod
    def json_body(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None
