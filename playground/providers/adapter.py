"""Adapter, the base class of every provider adapter. An adapter is one
module with one class: it builds the request (after ModelSpec.validate),
parses the response and reads its provider's error body in the one hook,
raise_for_response. Sending, timeouts, transport errors, the status -> error
kind mapping and rate-limit waits live here (Adapter._request, http_error),
with the one client per adapter class per process (client.py). No retry
here: the job layer decides (generations/retry.py), and never asks which
provider it is talking to."""

from __future__ import annotations

import json
from typing import Any

import httpx

from playground.lib import text
from playground.lib.units import Unit, credit_unit

from .client import process_client
from .errors import DEFAULT_RETRY_AFTER, RETRYABLE, ProviderError, kind_for_status, retry_hint
from .exchange import ImageInput, Outcome, PreparedRequest
from .params import ModelSpec


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
