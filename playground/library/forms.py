"""The library's forms: every free-text field has a limit and says so."""

from __future__ import annotations

import re

from django import forms

from . import models as m
from . import run


class TextField(forms.CharField):
    """Counts a line break as one character, as the browser's maxlength does."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.replace("\r\n", "\n")
        return super().to_python(value)


def _limit(n):
    return {"max_length": f"At most {n} characters (this has %(show_value)d)."}


class TagsField(forms.CharField):
    """Comma-separated tags: at most 10, each at most 40 characters."""

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=(m.TAG_MAX + 2) * m.TAGS_MAX,
                         error_messages=_limit((m.TAG_MAX + 2) * m.TAGS_MAX),
                         help_text=f"Comma-separated; at most {m.TAGS_MAX} tags of {m.TAG_MAX} characters.", **kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def clean(self, value):
        value = super().clean(value)
        tags, seen = [], set()
        for tag in (t.strip() for t in value.split(",")):
            tag = re.sub(r"\s+", " ", tag)
            if not tag or tag.lower() in seen:
                continue
            if "|" in tag:
                raise forms.ValidationError("A tag cannot contain |.")
            if len(tag) > m.TAG_MAX:
                raise forms.ValidationError(
                    f"Each tag has at most {m.TAG_MAX} characters: \"{tag[:20]}...\" has {len(tag)}.")
            seen.add(tag.lower())
            tags.append(tag)
        if len(tags) > m.TAGS_MAX:
            raise forms.ValidationError(f"At most {m.TAGS_MAX} tags ({len(tags)} given).")
        return tags


def text_field(**kwargs):
    return TextField(max_length=m.TEXT_MAX, error_messages=_limit(m.TEXT_MAX),
                     widget=forms.Textarea(attrs={"rows": 5}), label="Prompt", **kwargs)


def notes_field():
    return TextField(max_length=m.NOTES_MAX, required=False, error_messages=_limit(m.NOTES_MAX),
                     widget=forms.Textarea(attrs={"rows": 3}))


class NewPromptForm(forms.Form):
    title = forms.CharField(max_length=m.TITLE_MAX, error_messages=_limit(m.TITLE_MAX))
    text = text_field()
    tags = TagsField()
    notes = notes_field()
    visibility = forms.ChoiceField(choices=m.Prompt.VISIBILITIES, widget=forms.RadioSelect)


class EditForm(forms.Form):
    """A new version: the text, tags and notes, with an optional message."""

    text = text_field()
    tags = TagsField()
    notes = notes_field()
    message = forms.CharField(max_length=m.MESSAGE_MAX, required=False, error_messages=_limit(m.MESSAGE_MAX),
                              help_text="Optional: what changed.")


class SettingsForm(forms.Form):
    """The prompt itself (not a version): its title and who sees it."""

    title = forms.CharField(max_length=m.TITLE_MAX, error_messages=_limit(m.TITLE_MAX))
    visibility = forms.ChoiceField(choices=m.Prompt.VISIBILITIES, widget=forms.RadioSelect)


class LabelForm(forms.Form):
    name = forms.CharField(max_length=m.LABEL_MAX, error_messages=_limit(m.LABEL_MAX), label="Label",
                           help_text="e.g. best")
    version = forms.TypedChoiceField(coerce=int, label="Version")

    def __init__(self, *args, numbers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(n, f"v{n}") for n in numbers]

    def clean_name(self):
        name = re.sub(r"\s+", " ", self.cleaned_data["name"].strip())
        if not name:
            raise forms.ValidationError("Give the label a name.")
        return name


class RunForm(forms.Form):
    """The target model and a field per variable of the version's text."""

    target = forms.ChoiceField(label="Model")

    def __init__(self, *args, names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(f"{p}:{mk}", label) for p, mk, label in run.targets()]
        self.names = list(names)
        for name in self.names:
            self.fields[f"var_{name}"] = forms.CharField(
                label=name, max_length=run.VARIABLE_MAX, error_messages=_limit(run.VARIABLE_MAX),
                help_text=f"Replaces {{{name}}} in the prompt.")

    def variable_fields(self):
        return [self[f"var_{n}"] for n in self.names]

    def values(self) -> dict[str, str]:
        return {n: self.cleaned_data[f"var_{n}"] for n in self.names}

    def chosen(self) -> tuple[str, str]:
        provider, _, model = self.cleaned_data["target"].partition(":")
        return provider, model
