"""The declarations of a model: Param (one parameter, declared once) and
ModelSpec (a model's parameters, path and price). They drive the form
field, the validation before anything is sent (ModelSpec.validate), the
request body (ModelSpec.body), the quote (priced params, estimate) and
"copy as code"."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
import math
import re
from typing import TYPE_CHECKING, Any, Callable

from playground.lib import text

from .errors import ProviderError

if TYPE_CHECKING:
    from .exchange import ImageInput


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
    # Seconds after the submit when a job of this model is usually done, as
    # we declare it: when a model's first jobs are polled, until the team's
    # own recent successes give their median (pipeline.timing).
    typical_seconds: float | None = None

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
