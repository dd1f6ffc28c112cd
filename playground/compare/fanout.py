"""One comparison, fanned out: the shared inputs (prompt, negative prompt,
seed, aspect ratio, input image) mapped onto each chosen model's own
parameters, the quote for the whole grid, and every cell's job created in
one transaction (all of them, or none when a hard budget refuses one)."""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import re
import secrets

from django.db import IntegrityError, transaction

from playground.generations.pipeline.create import create as create_job
from playground.generations.models import Generation
from playground.ledger.budgets import BudgetExceeded, check as budget_check
from playground.ledger.prices import Prices
from playground.lib.units import Amount, Totals
from playground.providers import registry
from playground.providers.errors import ProviderError
from playground.providers.params import ModelSpec, Param

from .models import Cell, Comparison, Row

SEED_RANGE = (1, 2147483647)
ASPECTS = ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"]
# Named sizes some models use, as width / height.
NAMED_RATIOS = {"square": 1.0, "square_hd": 1.0, "portrait_4_3": 3 / 4, "portrait_16_9": 9 / 16,
                "landscape_4_3": 4 / 3, "landscape_16_9": 16 / 9}
SHARED_LABELS = {"negative_prompt": "negative prompt", "seed": "seed", "aspect": "aspect ratio",
                 "image": "input image"}


def ratio_of(value) -> float | None:
    """width / height of a choice value such as "16:9", "1024x1536" or "portrait_4_3"."""
    if isinstance(value, str):
        if value in NAMED_RATIOS:
            return NAMED_RATIOS[value]
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[:x]\s*(\d+(?:\.\d+)?)", value)
        if m and float(m.group(2)):
            return float(m.group(1)) / float(m.group(2))
    return None


def closest_choice(p: Param, aspect: str):
    """The choice of p whose ratio is nearest the asked aspect (on a log
    scale, so 2:1 and 1:2 are as far from 1:1), or None."""
    want = ratio_of(aspect)
    best, best_d = None, None
    for value, _ in p.choice_pairs():
        r = ratio_of(value)
        if r is None or want is None:
            continue
        d = abs(math.log(r / want))
        if best_d is None or d < best_d:
            best, best_d = value, d
    return best


def size_param(spec: ModelSpec) -> Param | None:
    for name in ("aspect_ratio", "image_size", "size"):
        try:
            p = spec.param(name)
        except KeyError:
            continue
        if p.choices and any(ratio_of(v) for v, _ in p.choice_pairs()):
            return p
    return None


def seed_param(spec: ModelSpec) -> Param | None:
    for p in spec.params:
        if p.kind == "int" and (p.random_default or p.name == "seed"):
            return p
    return None


def prompt_param(spec: ModelSpec) -> Param | None:
    for p in spec.params:
        if p.name == "prompt" and p.kind in ("text", "longtext"):
            return p
    return None


def image_param(spec: ModelSpec) -> Param | None:
    params = spec.image_params()
    return params[0] if params else None


def needs_image(spec: ModelSpec) -> bool:
    """True when the model, with its defaults, cannot run without an input image."""
    values = spec.defaults()
    return any(p.required and p.applies(values) for p in spec.image_params())


def choices(with_image: bool = False) -> list[tuple[str, str]]:
    """("provider:model", label) of every model a comparison can use:
    text-to-image models, or (with an input image) models that take one."""
    out = []
    for key, cls in registry.adapter_classes().items():
        for mkey, spec in cls.models.items():
            if prompt_param(spec) is None or not prompt_param(spec).required:
                continue
            if with_image and image_param(spec) is None:
                continue
            if not with_image and needs_image(spec):
                continue
            out.append((f"{key}:{mkey}", f"{cls.label} - {spec.label}"))
    return out


def label(provider: str, model: str) -> str:
    cls = registry.get_or_removed(provider)
    return f"{cls.label} - {registry.spec_or_removed(provider, model).label}"


@dataclass
class Mapped:
    provider: str
    model: str
    params: dict
    dropped: list[str] = field(default_factory=list)
    seed_field: str | None = None


def map_inputs(provider: str, model: str, *, prompt: str, seed: int, negative_prompt: str = "",
               aspect: str = "", image: str = "", overrides: dict | None = None) -> Mapped:
    """The shared inputs as this model's parameters, and the shared inputs it
    does not take (listed as "not used"). Raises ProviderError("validation")
    when the result is not something the model accepts."""
    spec = registry.get(provider).model(model)
    params = spec.defaults()
    dropped = []
    params[prompt_param(spec).name] = prompt
    if negative_prompt:
        try:
            neg = spec.param("negative_prompt")
            params[neg.name] = negative_prompt
        except KeyError:
            dropped.append(SHARED_LABELS["negative_prompt"])
    sp = seed_param(spec)
    if sp is not None:
        params[sp.name] = seed
    else:
        dropped.append(SHARED_LABELS["seed"])
    if aspect:
        p = size_param(spec)
        if p is None and not _width_height(spec, params, aspect):
            dropped.append(SHARED_LABELS["aspect"])
        elif p is not None:
            params[p.name] = closest_choice(p, aspect)
            _switch_on(spec, p, params)
    if image:
        p = image_param(spec)
        if p is None:
            dropped.append(SHARED_LABELS["image"])
        else:
            params[p.name] = image
            _switch_on(spec, p, params)
    params.update(overrides or {})
    spec.validate(spec.with_random_defaults(params))
    return Mapped(provider, model, params, dropped, sp.name if sp else None)


def _width_height(spec: ModelSpec, params: dict, aspect: str) -> bool:
    """For a model sized by width and height: the aspect at its default
    long side (rounded to 64 pixels, kept within the declared range)."""
    try:
        w, h = spec.param("width"), spec.param("height")
    except KeyError:
        return False
    if w.kind != "int" or h.kind != "int" or ratio_of(aspect) is None:
        return False
    r = ratio_of(aspect)
    side = max(w.default or 1024, h.default or 1024)
    width, height = (side, side / r) if r >= 1 else (side * r, side)

    def fit(value, p):
        value = max(64, int(round(value / 64.0)) * 64)
        if p.min is not None:
            value = max(value, int(p.min))
        if p.max is not None:
            value = min(value, int(p.max))
        return value

    params[w.name], params[h.name] = fit(width, w), fit(height, h)
    _switch_on(spec, w, params)
    return True


def _switch_on(spec: ModelSpec, p: Param, params: dict) -> None:
    """Make p apply: set the mode its show_if depends on (e.g. kvid's
    size_mode, Nano Banana's edit model) to the first value that shows it."""
    for key, allowed in (p.show_if or {}).items():
        if params.get(key) not in allowed:
            params[key] = allowed[0]


def parse_overrides(text: str, models: list[str]) -> dict:
    """Per-model overrides, one line per model: "kie:qwen num_inference_steps=40
    acceleration_level=high". Values are read as the parameter's kind; an
    unknown model, parameter or value raises ValueError naming it."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key, pairs = parts[0], parts[1:]
        if key not in models:
            raise ValueError(f"Overrides: {key} is not one of the chosen models.")
        spec = registry.get(key.split(":", 1)[0]).model(key.split(":", 1)[1])
        values = out.setdefault(key, {})
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            try:
                p = spec.param(name)
            except KeyError:
                raise ValueError(f"Overrides: {label(*key.split(':', 1))} has no parameter {name!r}.") from None
            if not sep or p.kind in ("image", "longtext") or name == "prompt":
                raise ValueError(f"Overrides: write {name}=value (not for the prompt or an image).")
            values[name] = _typed(p, raw)
    return out


def _typed(p: Param, raw: str):
    try:
        if p.kind == "int":
            return int(raw)
        if p.kind == "float":
            return float(raw)
        if p.kind == "bool":
            return {"true": True, "false": False}[raw.lower()]
        if p.kind == "choice":
            for value, _ in p.choice_pairs():
                if str(value) == raw:
                    return value
            raise KeyError(raw)
    except (ValueError, KeyError):
        raise ValueError(f"Overrides: {raw!r} is not a value {p.name} takes.") from None
    return raw


# --- rows ------------------------------------------------------------------------------


def draw_seed() -> int:
    lo, hi = SEED_RANGE
    return lo + secrets.randbelow(hi - lo + 1)


@dataclass
class Plan:
    """Every cell of a comparison before anything is created."""

    rows: list[tuple[str, int]]  # (prompt, seed)
    models: list[str]  # "provider:model"
    negative_prompt: str = ""
    aspect: str = ""
    image: str = ""
    overrides: dict = field(default_factory=dict)  # "provider:model" -> {param: value}
    cells: list[list[Mapped]] = field(default_factory=list)

    def build(self) -> "Plan":
        self.cells = []
        for prompt, seed in self.rows:
            row = []
            for m in self.models:
                provider, model = m.split(":", 1)
                try:
                    row.append(map_inputs(provider, model, prompt=prompt, seed=seed,
                                          negative_prompt=self.negative_prompt, aspect=self.aspect, image=self.image,
                                          overrides=self.overrides.get(m)))
                except ProviderError as e:
                    raise ProviderError("validation", f"{label(provider, model)}: {e.message}", field=e.field) from e
            self.cells.append(row)
        return self

    def use_upload(self, img, *, team, by) -> None:
        """Store an uploaded (checked) input image, owned by `by`, and send it to every cell."""
        from playground.generations.models import InputImage

        self.image = str(InputImage.from_checked(team=team, owner=by, img=img).uuid)
        self.build()

    def quote(self, team, user) -> dict:
        """The whole grid's cost: per unit (Totals), in money (Prices), and
        the budgets it would touch."""
        prices = Prices(team)
        totals = Totals()
        per_model: dict[str, Totals] = {}
        by_provider: dict[str, Amount] = {}
        for row in self.cells:
            for m in row:
                spec = registry.get(m.provider).model(m.model)
                amount = Amount(spec.estimate(m.params), registry.get(m.provider).unit)
                totals.add(amount)
                per_model.setdefault(label(m.provider, m.model), Totals()).add(amount)
                by_provider[m.provider] = by_provider[m.provider] + amount if m.provider in by_provider else amount
        # Each budget once, with what the whole grid needs of it (a budget for
        # all providers, in money, adds up every provider's cells): the
        # budgets a run touches are the ledger's one rule (budgets.applicable).
        merged = budget_check(team, user, by_provider, prices)
        warnings = [st for st in merged if st.would_exceed]
        return {"totals": totals, "money": prices.total(totals), "per_model": per_model,
                "cells": sum(len(r) for r in self.cells), "budgets": warnings}


class GridRefused(Exception):
    def __init__(self, cells: list[str], reasons: list[str]):
        self.cells, self.reasons = cells, reasons
        super().__init__("These cells could not run: " + ", ".join(cells))


def create(plan: Plan, *, team, owner, name: str, visibility: str, blind: bool = False,
           rerun_of: Comparison | None = None, client_token=None) -> Comparison:
    """The comparison, its rows and cells, and one job per cell, in one
    transaction. If a hard budget refuses any cell, nothing is created and
    GridRefused names every cell that could not run."""
    if client_token:
        existing = Comparison.objects.filter(owner=owner, client_token=client_token).first()
        if existing:
            return existing
    try:
        return _create(plan, team=team, owner=owner, name=name, visibility=visibility, blind=blind,
                       rerun_of=rerun_of, client_token=client_token)
    except IntegrityError:  # the same form, submitted twice at the same moment
        if not client_token:
            raise
        return Comparison.objects.get(owner=owner, client_token=client_token)


def _create(plan: Plan, *, team, owner, name, visibility, blind, rerun_of, client_token) -> Comparison:
    refused, reasons = [], []
    with transaction.atomic():
        comp = Comparison.objects.create(
            team=team, owner=owner, name=name, visibility=visibility, blind=blind, rerun_of=rerun_of,
            client_token=client_token,
            inputs={"negative_prompt": plan.negative_prompt, "aspect": plan.aspect, "image": plan.image,
                    "models": plan.models, "overrides": plan.overrides})
        for i, ((prompt, seed), mapped) in enumerate(zip(plan.rows, plan.cells)):
            row = Row.objects.create(comparison=comp, index=i, prompt=prompt, seed=seed)
            for col, m in enumerate(mapped):
                try:
                    gen = create_job(team=team, owner=owner, provider=m.provider, model=m.model,
                                      params=m.params, visibility=visibility)
                except BudgetExceeded as e:
                    refused.append(f"row {i + 1} {label(m.provider, m.model)}")
                    reasons.append(str(e))
                    continue
                Cell.objects.create(row=row, column=col, provider=m.provider, model=m.model, generation=gen,
                                    generation_uuid=gen.uuid, params=gen.params, dropped=m.dropped,
                                    seed_used=gen.params.get(m.seed_field) if m.seed_field else None)
        if refused:
            transaction.set_rollback(True)
    if refused:
        raise GridRefused(refused, list(dict.fromkeys(reasons)))
    return comp


def retry(cell: Cell) -> Generation:
    """A new job for one cell (same parameters, same seed)."""
    comp = cell.row.comparison
    with transaction.atomic():
        gen = create_job(team=comp.team, owner=comp.owner, provider=cell.provider, model=cell.model,
                          params=cell.params, visibility=comp.visibility, remix_of=cell.generation)
        cell.generation, cell.generation_uuid = gen, gen.uuid
        cell.save(update_fields=["generation", "generation_uuid"])
    return gen


def plan_from(comp: Comparison) -> Plan:
    """The same comparison again (a re-run): same rows, seeds and inputs."""
    inputs = comp.inputs
    return Plan(rows=[(r.prompt, r.seed) for r in comp.rows.all()], models=list(inputs.get("models", [])),
                negative_prompt=inputs.get("negative_prompt", ""), aspect=inputs.get("aspect", ""),
                image=inputs.get("image", ""), overrides=inputs.get("overrides") or {}).build()
