"""Running a version: its `{subject}`-style variables, and its parameters
carried to a target model (kept where the target has them and takes the
value; listed as dropped otherwise)."""

from __future__ import annotations

import re

from playground.providers import registry
from playground.providers.params import ModelSpec, Param

VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,39})\}")
VARIABLE_MAX = 300  # characters a variable's value may have
VARIABLES_MAX = 20  # fields offered at most


def variables(text: str) -> list[str]:
    """The distinct variable names in text, in order of first use."""
    seen = []
    for name in VARIABLE.findall(text):
        if name not in seen:
            seen.append(name)
    return seen[:VARIABLES_MAX]


def substitute(text: str, values: dict[str, str]) -> str:
    """text with each {name} that has a value replaced by it (one pass: a
    value that itself looks like {name} stays as written)."""
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def targets() -> list[tuple[str, str, str]]:
    """(provider key, model key, label) of every configured model that takes a prompt."""
    return [
        (key, mkey, f"{cls.label} - {spec.label}")
        for key, cls in registry.adapter_classes().items()
        for mkey, spec in cls.models.items()
        if _prompt_param(spec) is not None
    ]


def _prompt_param(spec: ModelSpec) -> Param | None:
    for p in spec.params:
        if p.name == "prompt" and p.kind in ("text", "longtext") and p.required:
            return p
    return None


def prompt_limit(spec: ModelSpec) -> int | None:
    p = _prompt_param(spec)
    return p.max_length if p else None


def carry(params: dict, spec: ModelSpec) -> tuple[dict, list[str]]:
    """(the parameters the target model takes, the names dropped): a
    parameter is kept when the target declares it (not as an image) and the
    value is one it accepts (a listed choice, a number in range, text within
    its length and pattern)."""
    kept, dropped = {}, []
    names = {p.name: p for p in spec.params}
    for name, value in params.items():
        p = names.get(name)
        if p is None or p.kind == "image" or name == "prompt" or not _accepts(p, value):
            dropped.append(name)
        else:
            kept[name] = value
    return kept, dropped


def _accepts(p: Param, value) -> bool:
    if value is None or value == "":
        return False
    if p.kind == "choice":
        return not isinstance(value, bool) and value in [v for v, _ in p.choice_pairs()]
    if p.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if p.kind == "int" and not isinstance(value, int):
            return False
        return (p.min is None or value >= p.min) and (p.max is None or value <= p.max)
    if p.kind == "bool":
        return isinstance(value, bool)
    if p.kind in ("text", "longtext"):
        if not isinstance(value, str) or (p.max_length and len(value) > p.max_length):
            return False
        return not p.pattern or re.fullmatch(p.pattern, value) is not None
    return False
