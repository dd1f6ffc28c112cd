"""An OpenAI Images request -> the parameters of one playground model.

Every rule comes from the models' declarations (providers/*: Param.openai,
openai_as, openai_values; image parameters named image and mask; show_if):
nothing here names a provider. What a model cannot take is a 400 naming the
field. Provider-specific parameters come as top-level keys that are declared
parameters of the model (the openai client's extra_body merges its keys at
the top level), or inside an object field provider_params (or extra)."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd
import json
import re

from django.conf import settings

from playground.lib import text
from playground.lib.net.download import DownloadError
from playground.lib.images import check_image
from playground.providers.errors import ProviderError
from playground.providers.params import ModelSpec, Param

from .catalog import Resolved
from .errors import ApiError, invalid

# The OpenAI Images request fields a model may declare a parameter for (Param.openai).
MAPPED = ("size", "quality", "style", "background", "output_format", "output_compression", "moderation",
          "input_fidelity")
# OpenAI fields the API itself reads.
OWN = ("prompt", "model", "n", "response_format", "user", "stream", "partial_images")
PASS_OBJECTS = ("provider_params", "extra", "extra_body")
RESPONSE_FORMATS = ("url", "b64_json")
USER_MAX = 256
SIZE_RE = re.compile(r"\s*([1-9]\d{0,5})\s*x\s*([1-9]\d{0,5})\s*")
# What an endpoint needs: an input image, and whether it may have one.
ENDPOINTS = {"generations": (False, False), "edits": (True, True), "variations": (True, True)}


@dataclass
class Plan:
    resolved: Resolved
    params: dict  # without images
    images: dict = field(default_factory=dict)  # image param name -> CheckedImage
    jobs: int = 1  # generations to create (n when the model makes one image per job)
    response_format: str = "url"
    origin: dict = field(default_factory=dict)  # param name -> the request field it came from


def plan(resolved: Resolved, endpoint: str, fields: dict, uploads: dict) -> Plan:
    """fields: the request's fields (JSON values, or multipart strings);
    uploads: {"image": [files], "mask": [files]}."""
    spec = resolved.spec
    response_format = fields.get("response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise invalid(f"Invalid value: {str(response_format)[:40]!r}. Supported values are: 'url' and 'b64_json'.",
                      "response_format", "invalid_value")
    user = fields.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > USER_MAX):
        raise invalid(f"`user` must be a string of at most {USER_MAX} characters.", "user", "invalid_value")
    if _truthy(fields.get("stream")) or fields.get("partial_images") not in (None, "", 0, "0"):
        raise invalid("Streaming is not supported: leave out `stream` and `partial_images`.", "stream",
                      "unsupported_parameter")
    n = _count(fields.get("n"))
    native = _native(spec, fields)

    params, origin = {}, {}
    prompt = fields.get("prompt")
    if prompt is not None:
        if not _has(spec, "prompt"):
            raise invalid(f"{resolved.id} takes no prompt.", "prompt", "unsupported_parameter")
        if not isinstance(prompt, str):
            raise invalid("`prompt` must be a string.", "prompt", "invalid_type")
        params["prompt"], origin["prompt"] = prompt, "prompt"
    for name in MAPPED:
        value = fields.get(name)
        if value is None or value == "" or value == "auto":
            continue
        targets = [p for p in spec.params if p.openai == name]
        if not targets:
            raise invalid(f"{resolved.id} does not take `{name}`.", name, "unsupported_parameter")
        for p in targets:
            params[p.name], origin[p.name] = _convert(p, value, name, resolved.id), name
    counts = [p for p in spec.params if p.openai == "n"]
    jobs = n
    if counts:
        params[counts[0].name], origin[counts[0].name], jobs = _coerce(counts[0], n), "n", 1
    for name, value in native.items():
        params[name], origin[name] = value, name

    images = _image_targets(resolved, endpoint, spec, uploads)
    present = {**params, **{name: "(upload)" for name in images}}
    _fill_show_if(spec, present, set(origin) | set(images))
    params = {k: v for k, v in present.items() if k not in images}
    sources = {**origin, **{k: k for k in images}}
    for name, source in ((p.name, sources[p.name]) for p in spec.params if p.name in sources):
        if not spec.param(name).applies(present):
            needs = ", ".join(f"{k}={'/'.join(map(str, v))}" for k, v in spec.param(name).show_if.items())
            raise invalid(f"`{source}` cannot be used here: {resolved.id} takes it only with {needs}.",
                          _field(origin, images, name), "unsupported_parameter")
    if endpoint == "generations":
        for p in spec.image_params():
            if p.required and p.applies(present):
                raise invalid(f"{resolved.id} needs an input image: use /v1/images/edits.", "model",
                              "unsupported_model")
    try:
        spec.validate(params)
    except ProviderError as e:
        param = _field(origin, images, e.field) if e.field else None
        raise invalid(f"Invalid value for `{param}`: {e.message}" if param else e.message, param,
                      "invalid_value") from None
    checked = {name: _checked(upload, source) for name, (upload, source) in images.items()}
    return Plan(resolved, params, checked, jobs, response_format, origin)


def _field(origin, images, name):
    if name in images:
        return images[name][1]
    return origin.get(name, name)


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _has(spec: ModelSpec, name: str) -> bool:
    return any(p.name == name for p in spec.params)


def _count(value) -> int:
    if value is None or value == "":
        return 1
    n = _int(value)
    if n is None or not 1 <= n <= settings.API_MAX_N:
        raise invalid(f"Invalid value for `n`: {str(value)[:20]!r}. It must be a whole number from 1 to "
                      f"{settings.API_MAX_N}.", "n", "invalid_value")
    return n


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    return None


def _native(spec: ModelSpec, fields: dict) -> dict:
    """Provider-specific parameters: an object field (provider_params, extra,
    extra_body; a JSON string in a multipart form), and top-level keys that
    are declared parameters of the model. Anything else is refused."""
    out = {}
    for key, value in fields.items():
        if key in OWN or key in MAPPED:
            continue
        if key in PASS_OBJECTS:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
                # Its JSON may spell out what the form could not carry ("\ud800").
                found = text.first_problem(value)
                if found is not None:
                    where = text.Found((key,) + found.path, found.problem, found.is_key).where()
                    raise invalid(f"Invalid value for `{where}`: the text {found.problem}.", where, "invalid_value")
            if not isinstance(value, dict):
                raise invalid(f"`{key}` must be an object of the model's own parameters.", key, "invalid_type")
            items = value.items()
        else:
            items = [(key, value)]
        for name, v in items:
            p = next((p for p in spec.params if p.name == name), None)
            if p is None or p.kind == "image":
                known = ", ".join(q.name for q in spec.params if q.kind != "image")
                raise invalid(f"Unrecognized request argument supplied: {str(name)[:60]}. The model's own "
                              f"parameters are: {known}.", str(name)[:60], "unknown_parameter")
            out[name] = _coerce(p, v)
    return out


def _coerce(p: Param, value):
    """A form or JSON value as the declaration types it; anything that does
    not fit is left for validate() to name."""
    if p.kind == "int":
        n = _int(value)
        return value if n is None else n
    if p.kind == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if p.kind == "bool" and isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower(), value)
    if p.kind == "choice":
        for v, _ in p.choice_pairs():
            if v == value or str(v) == str(value):
                return v
    return value


def _convert(p: Param, value, name: str, model: str):
    """An OpenAI field's value as parameter p takes it (Param.openai_as)."""
    how = p.openai_as
    if how in ("width", "height", "ratio"):
        m = SIZE_RE.fullmatch(str(value))
        if not m:
            if how == "ratio" and _coerce(p, value) in [v for v, _ in p.choice_pairs()]:
                return _coerce(p, value)  # the model's own value ("16:9")
            raise invalid(f"Invalid value for `{name}`: {str(value)[:40]!r}. Use WIDTHxHEIGHT, e.g. 1024x1024.",
                          name, "invalid_value")
        w, h = int(m.group(1)), int(m.group(2))
        if how == "width":
            return w
        if how == "height":
            return h
        d = gcd(w, h)
        ratio = f"{w // d}:{h // d}"
        choices = [v for v, _ in p.choice_pairs()]
        if ratio not in choices:
            raise invalid(f"Invalid value for `{name}`: {value!r} ({ratio}). {model} takes the aspect ratios "
                          f"{', '.join(map(str, choices))}.", name, "invalid_value")
        return ratio
    pairs = dict(p.openai_values)
    out = _coerce(p, pairs.get(str(value), value))
    if p.kind == "choice" and out not in [v for v, _ in p.choice_pairs()]:
        offered = list(pairs) + [str(v) for v, _ in p.choice_pairs()]
        raise invalid(f"Invalid value for `{name}`: {str(value)[:40]!r}. {model} takes one of: "
                      f"{', '.join(dict.fromkeys(offered))}.", name, "invalid_value")
    return out


def _image_targets(resolved: Resolved, endpoint: str, spec: ModelSpec, uploads: dict) -> dict:
    """{image param name: (upload, request field)} for the uploads given."""
    needs_image, may_have = ENDPOINTS[endpoint]
    given = {k: [f for f in v if f is not None] for k, v in uploads.items()}
    images = given.get("image") or []
    mask = given.get("mask") or []
    if not may_have and (images or mask):
        raise invalid("This endpoint takes no image: use /v1/images/edits.", "image", "unsupported_parameter")
    if not may_have:
        return {}
    params = spec.image_params()
    image_param = next((p for p in params if p.name == "image"), None) or next(
        (p for p in params if p.name != "mask"), None)
    mask_param = next((p for p in params if p.name == "mask"), None)
    if image_param is None:
        raise invalid(f"{resolved.id} takes no input image: use /v1/images/generations.", "model",
                      "unsupported_model")
    if needs_image and not images:
        raise invalid("You must provide an image (`image`).", "image", "missing_required_parameter")
    if len(images) > 1:
        raise invalid(f"{resolved.id} takes one input image; {len(images)} were given.", "image", "invalid_value")
    if len(mask) > 1 or (mask and mask_param is None):
        raise invalid(f"{resolved.id} takes no mask." if mask_param is None else "Give one mask.", "mask",
                      "unsupported_parameter")
    out = {image_param.name: (images[0], "image")}
    if mask:
        out[mask_param.name] = (mask[0], "mask")
    return out


def _fill_show_if(spec: ModelSpec, values: dict, given: set) -> None:
    """A given parameter that applies only when another one has some value
    (kvid's width needs size_mode=custom, Nano Banana's image the edit
    mode): that other one takes its first allowed value, unless it was given."""
    changed = True
    while changed:
        changed = False
        for p in [p for p in spec.params if p.name in given]:  # declared order: the same answer every time
            for dep, allowed in (p.show_if or {}).items():
                if dep not in values:
                    values[dep] = allowed[0]
                    given.add(dep)
                    changed = True


def _checked(upload, source: str):
    """An uploaded image through the same checks as the form's (size, then
    decoded within the pixel cap and re-encoded: lib/images.py)."""
    if upload.size > settings.UPLOAD_MAX_BYTES:
        raise invalid(f"The {source} file is larger than {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB.", source,
                      "file_too_large")
    try:
        return check_image(upload.read())
    except DownloadError as e:
        raise invalid(f"Invalid image for `{source}`: {e}", source, "invalid_image") from None
