"""Forms. A model's form is built from its declared parameters, so the form,
its validation and the request body cannot drift apart."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from playground.providers.params import ModelSpec, Param


def field_for(p: Param) -> forms.Field:
    field = _field_for(p)
    if p.priced:  # the live estimate sends these fields only
        field.widget.attrs["class"] = (field.widget.attrs.get("class", "") + " priced").strip()
    return field


class TextField(forms.CharField):
    """A CharField that counts a line break as one character, as the
    browser's maxlength does (a textarea submits CRLF)."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.replace("\r\n", "\n")
        return super().to_python(value)


def _field_for(p: Param) -> forms.Field:
    common = {"required": p.required, "label": p.title, "help_text": p.help, "initial": p.default}
    if p.kind in ("text", "longtext"):
        widget = forms.Textarea(attrs={"rows": 4}) if p.kind == "longtext" else forms.TextInput
        validators = []
        if p.pattern:
            validators.append(RegexValidator(rf"\A(?:{p.pattern})\Z", f"Enter a value like {p.choice_pairs()[0][0]}."
                                             if p.choices else "Enter a valid value."))
        if p.kind == "text" and p.choices:  # free text, with suggestions
            widget = DatalistInput(p.choice_pairs())
        return TextField(max_length=p.max_length, strip=True, widget=widget, validators=validators, **common)
    if p.kind == "int":
        return forms.IntegerField(min_value=p.min, max_value=p.max, **common)
    if p.kind == "float":
        return forms.FloatField(min_value=p.min, max_value=p.max, **common)
    if p.kind == "bool":
        return forms.BooleanField(**{**common, "required": False})
    if p.kind == "image":
        return forms.FileField(
            required=False, label=p.title, help_text=p.help or "PNG, JPEG or WebP.",
            widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        )
    if p.kind == "choice":
        choices = p.choice_pairs()
        if not p.required and p.default is None:
            choices = [("", "(provider default)")] + choices
        return forms.TypedChoiceField(choices=choices, coerce=_coercer(p), empty_value=None, **common)
    raise ValueError(f"unknown parameter kind {p.kind}")


class DatalistInput(forms.TextInput):
    """A text input with suggestions (<input list> + <datalist>): any value
    is accepted, the listed ones are offered."""

    def __init__(self, suggestions, attrs=None):
        super().__init__(attrs)
        self.suggestions = list(suggestions)

    def render(self, name, value, attrs=None, renderer=None):
        from django.utils.html import format_html, format_html_join

        list_id = f"{(attrs or {}).get('id') or 'id_' + name}-suggestions"
        html = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join("", '<option value="{}">{}</option>', (
            (v, label if label != str(v) else "") for v, label in self.suggestions
        ))
        return format_html('{}<datalist id="{}">{}</datalist>', html, list_id, options)


def _coercer(p: Param):
    kinds = {type(v) for v, _ in p.choice_pairs()}
    if kinds == {int}:
        return int
    if kinds == {float} or kinds == {int, float}:
        return float
    return str


class ModelForm(forms.Form):
    """Base for the generated forms; use form_for(spec).

    An image parameter is an upload (field NAME) or an image picked from the
    gallery (hidden field NAME__ref holding an input image's id)."""

    spec: ModelSpec

    def __init__(self, *args, team=None, owner=None, adult_allowed=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.team, self.owner = team, owner
        self.picked = {}  # image param name -> InputImage chosen from the gallery
        for p in self.spec.params:
            if p.kind == "choice" and p.adult_values and not adult_allowed:
                field = self.fields[p.name]
                field.choices = [c for c in field.choices if c[0] not in p.adult_values]
        for p in self.spec.image_params():
            ref = self.data.get(f"{p.name}__ref") if self.is_bound else None
            if ref and team is not None:
                from .models import InputImage

                try:
                    self.picked[p.name] = InputImage.objects.filter(team=team, owner=owner, uuid=ref).first()
                except ValidationError:
                    self.picked[p.name] = None

    def rows(self):
        """(bound field, declared param, show-if JSON) for the template."""
        import json

        images = self.spec.image_params()
        first_image = images[0].name if images else None
        return [
            {"field": self[p.name], "param": p, "takes_picked": p.name == first_image,
             "default_label": _default_label(p),
             "show_if": json.dumps({k: list(v) for k, v in p.show_if.items()}) if p.show_if else ""}
            for p in self.spec.params
        ]

    def clean(self):
        from django.conf import settings

        from playground.lib.net.download import DownloadError
        from playground.lib.images import check_image

        data = super().clean()
        values = {k: v for k, v in data.items() if v not in (None, "")}
        for p in self.spec.image_params():
            upload = data.get(p.name)
            if upload:
                if upload.size > settings.UPLOAD_MAX_BYTES:
                    self.add_error(p.name, f"The file is larger than {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB.")
                    continue
                try:
                    data[p.name] = check_image(upload.read())  # decoded once, kept re-encoded
                except DownloadError as e:
                    self.add_error(p.name, str(e))
                    continue
            elif self.picked.get(p.name):
                data[p.name] = self.picked[p.name]
            elif p.name in self.picked:
                self.add_error(p.name, "That image is not available to your team.")
            elif p.required and p.applies(values):
                self.add_error(p.name, "Upload an image or pick one from the gallery.")
        if not self.errors:
            self.check_declarations(data)
        return data

    def check_declarations(self, data):
        """pipeline.create refuses what the declarations forbid (spec.validate):
        when the fields found nothing, a value they let through that the
        declarations refuse is shown on its field, never as a server error."""
        from playground.providers.errors import ProviderError

        out = {}
        for p in self.spec.params:
            value = data.get(p.name)
            if p.kind == "image" or value is None or value == "":
                continue
            if p.kind == "bool" and value is False and p.default in (None, False):
                continue
            out[p.name] = value
        out = {k: v for k, v in out.items() if self.spec.param(k).applies(out)}
        try:
            self.spec.validate(out)
        except ProviderError as e:
            self.add_error(e.field if e.field in self.fields else None, e.message)

    def full_clean(self):
        super().full_clean()
        if self.is_bound and self.errors:
            # Without JavaScript too, the page opens on the first field to fix.
            first = next((p.name for p in self.spec.params if p.name in self.errors), None)
            if first:
                self.fields[first].widget.attrs["autofocus"] = True

    def params(self) -> dict:
        """Validated values, without empties and without fields that do not apply.
        Uploaded images are stored here and referenced by id."""
        from .models import InputImage

        data = self.cleaned_data
        out = {}
        for p in self.spec.params:
            value = data.get(p.name)
            if p.kind == "image" and value is not None and value != "":
                if not isinstance(value, InputImage):
                    value = InputImage.from_checked(team=self.team, owner=self.owner, img=value)
                value = str(value.uuid)
            if value is None or value == "":
                continue
            if p.kind == "bool" and value is False and p.default in (None, False):
                continue
            out[p.name] = value
        # An empty seed stays empty: pipeline.create draws it, for every caller.
        return {k: v for k, v in out.items() if self.spec.param(k).applies(out)}


def _default_label(p: Param) -> str:
    """The default as a user reads it: a choice's label, yes/no, the number."""
    if p.default is None or p.default == "" or p.kind == "image":
        return ""
    if p.kind == "choice":
        return dict(p.choice_pairs()).get(p.default, str(p.default))
    if p.kind == "bool":
        return "on" if p.default else "off"
    return str(p.default)


def form_for(spec: ModelSpec) -> type[ModelForm]:
    fields = {p.name: field_for(p) for p in spec.params}
    return type(f"{spec.key}Form", (ModelForm,), {**fields, "spec": spec})
