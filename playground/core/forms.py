"""Forms. A model's form is built from its declared parameters, so the form,
its validation and the request body cannot drift apart."""

from django import forms

from playground.providers.base import ModelSpec, Param


def field_for(p: Param) -> forms.Field:
    common = {"required": p.required, "label": p.title, "help_text": p.help, "initial": p.default}
    if p.kind in ("text", "longtext"):
        widget = forms.Textarea(attrs={"rows": 4}) if p.kind == "longtext" else forms.TextInput
        return forms.CharField(max_length=p.max_length, strip=True, widget=widget, **common)
    if p.kind == "int":
        return forms.IntegerField(min_value=p.min, max_value=p.max, **common)
    if p.kind == "float":
        return forms.FloatField(min_value=p.min, max_value=p.max, **common)
    if p.kind == "bool":
        return forms.BooleanField(**{**common, "required": False})
    if p.kind == "choice":
        choices = p.choice_pairs()
        if not p.required and p.default is None:
            choices = [("", "(provider default)")] + choices
        return forms.TypedChoiceField(choices=choices, coerce=_coercer(p), empty_value=None, **common)
    raise ValueError(f"unknown parameter kind {p.kind}")


def _coercer(p: Param):
    kinds = {type(v) for v, _ in p.choice_pairs()}
    if kinds == {int}:
        return int
    if kinds == {float} or kinds == {int, float}:
        return float
    return str


class ModelForm(forms.Form):
    """Base for the generated forms; use form_for(spec)."""

    spec: ModelSpec

    def params(self) -> dict:
        """Validated values, without empties and without fields that do not apply."""
        data = self.cleaned_data
        out = {}
        for p in self.spec.params:
            value = data.get(p.name)
            if value is None or value == "":
                continue
            if p.kind == "bool" and value is False and p.default in (None, False):
                continue
            out[p.name] = value
        return {k: v for k, v in out.items() if self.spec.param(k).applies(out)}


def form_for(spec: ModelSpec) -> type[ModelForm]:
    fields = {p.name: field_for(p) for p in spec.params}
    return type(f"{spec.key}Form", (ModelForm,), {**fields, "spec": spec})


class CredentialForm(forms.Form):
    api_key = forms.CharField(
        required=False, strip=True, max_length=500, label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: leave empty to keep the stored key.",
    )
    base_url = forms.URLField(required=False, label="Base URL", assume_scheme="https",
                              help_text="Leave empty for the provider's official API.")
    remove = forms.BooleanField(required=False, label="Remove the stored key (back to the sandbox)")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[("member", "Member"), ("owner", "Owner")])


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)
