"""Which models the API offers: every configured provider model as
provider/model (the playground's URL keys), plus the team's aliases; a
token's allowlist narrows them."""

from __future__ import annotations

from dataclasses import dataclass

from playground.providers import registry
from playground.providers.params import ModelSpec

from .errors import ApiError
from .models import ModelAlias, configured, model_id


@dataclass(frozen=True)
class Resolved:
    id: str  # as asked (an alias, or provider/model)
    provider: str
    model: str
    spec: ModelSpec

    @property
    def target(self) -> str:
        return model_id(self.provider, self.model)


def _targets(token, aliases: dict[str, str]) -> set[str] | None:
    """The provider/model ids the token's allowlist grants (an alias grants
    its target); None: everything."""
    allowed = [str(a) for a in (token.allowed_models or [])]
    if not allowed:
        return None
    return {aliases.get(a, a) for a in allowed}


def not_found(name) -> ApiError:
    return ApiError(404, f"The model `{name}` does not exist or you do not have access to it.", param="model",
                    code="model_not_found")


def resolve(token, name) -> Resolved:
    """The model a request names, if the token may use it; else the 404
    OpenAI gives for a model one cannot use (unknown and refused look alike)."""
    if not isinstance(name, str) or not name:
        raise ApiError(400, "You must provide a model parameter (provider/model, e.g. kie/seedream-v4, "
                       "or one of your team's aliases; GET /v1/models lists them).", param="model",
                       code="missing_required_parameter")
    aliases = dict(ModelAlias.objects.filter(team=token.team).values_list("name", "target"))
    target = aliases.get(name, name)
    models = configured()
    granted = _targets(token, aliases)
    if target not in models or (granted is not None and target not in granted):
        raise not_found(name[:200])
    provider, model = models[target]
    return Resolved(name, provider, model, registry.get(provider).models[model])


def listing(token) -> list[dict]:
    """GET /v1/models: what this token may use, aliases included."""
    aliases = list(ModelAlias.objects.filter(team=token.team))
    granted = _targets(token, {a.name: a.target for a in aliases})
    models = configured()
    out = [{"id": mid, "object": "model", "created": 0, "owned_by": provider}
           for mid, (provider, _) in models.items() if granted is None or mid in granted]
    out += [{"id": a.name, "object": "model", "created": int(a.created_at.timestamp()), "owned_by": a.target}
            for a in aliases if a.target in models and (granted is None or a.target in granted)]
    return out
