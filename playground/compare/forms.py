from __future__ import annotations

import uuid

from django import forms

from playground.providers.errors import ProviderError

from . import fanout
from .models import NAME_MAX, PROMPT_MAX, Comparison

ROWS_MAX = 4
UPLOAD_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _limited(label, max_length, required=False, textarea=False):
    return forms.CharField(
        label=label, required=required, max_length=max_length, strip=True,
        widget=forms.Textarea(attrs={"rows": 2}) if textarea else None,
        error_messages={"max_length": f"At most {max_length} characters (this has %(show_value)d)."})


class CompareForm(forms.Form):
    name = _limited("Name", NAME_MAX)
    prompt = _limited("Prompt", PROMPT_MAX, required=True, textarea=True)
    prompt_2 = _limited("Prompt 2", PROMPT_MAX, textarea=True)
    prompt_3 = _limited("Prompt 3", PROMPT_MAX, textarea=True)
    prompt_4 = _limited("Prompt 4", PROMPT_MAX, textarea=True)
    negative_prompt = _limited("Negative prompt", PROMPT_MAX, textarea=True)
    seeds = _limited("Seed(s)", 100)
    aspect = forms.ChoiceField(label="Aspect ratio", required=False,
                               choices=[("", "Each model's default")] + [(a, a) for a in fanout.ASPECTS])
    image = forms.ChoiceField(label="Input image", required=False, choices=[("", "None")])
    upload = forms.FileField(label="Or upload an input image", required=False)
    models = forms.MultipleChoiceField(label="Models", widget=forms.CheckboxSelectMultiple, choices=())
    overrides = _limited("Per-model overrides", 2000, textarea=True)
    visibility = forms.ChoiceField(choices=Comparison.VISIBILITIES, initial=Comparison.SHARED)
    client_token = forms.UUIDField(required=False, widget=forms.HiddenInput)
    blind = forms.BooleanField(label="Blind voting (models hidden until you vote on a row)", required=False)

    def __init__(self, *args, input_images=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["client_token"].initial = uuid.uuid4
        self.fields["image"].choices = [("", "None")] + [
            (str(i.uuid), f"{i.width}x{i.height}, {i.created_at:%Y-%m-%d %H:%M}") for i in input_images]
        seen = dict(fanout.choices(False))
        seen.update(fanout.choices(True))
        self.fields["models"].choices = list(seen.items())
        self.fields["overrides"].help_text = ("One line per model, e.g. \"kie:qwen num_inference_steps=40\": "
                                              "these values replace what the shared inputs gave that model.")
        self.fields["seeds"].help_text = "Empty: one is drawn. Several (comma separated, up to 4): one row each."

    def clean_upload(self):
        from django.conf import settings

        from playground.lib.net.download import DownloadError
        from playground.lib.images import check_image

        upload = self.cleaned_data.get("upload")
        if not upload:
            return None
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB.")
        try:
            return check_image(upload.read())  # decoded once, kept re-encoded
        except DownloadError as e:
            raise forms.ValidationError(str(e))

    def clean_seeds(self):
        raw = self.cleaned_data.get("seeds", "")
        if not raw:
            return []
        out = []
        for part in raw.replace(" ", ",").split(","):
            if not part:
                continue
            try:
                value = int(part)
            except ValueError:
                raise forms.ValidationError(f"{part[:20]!r} is not a whole number.")
            lo, hi = fanout.SEED_RANGE
            if not lo <= value <= hi:
                raise forms.ValidationError(f"A seed is from {lo} to {hi}.")
            out.append(value)
        if len(out) > ROWS_MAX:
            raise forms.ValidationError(f"At most {ROWS_MAX} seeds.")
        return out

    def clean(self):
        data = super().clean()
        prompts = [data.get(f) for f in ("prompt", "prompt_2", "prompt_3", "prompt_4") if data.get(f)]
        seeds = data.get("seeds") or []
        if len(prompts) > 1 and len(seeds) > 1:
            raise forms.ValidationError("Use several prompts or several seeds, not both.")
        models = data.get("models") or []
        image = data.get("image") or ""
        if data.get("upload") and not image:
            image = UPLOAD_PLACEHOLDER  # replaced by the stored image's id when the comparison runs
        allowed = dict(fanout.choices(bool(image)))
        wrong = [m for m in models if m not in allowed]
        if wrong:
            self.add_error("models", ("These models need an input image: " if not image else
                                      "These models take no input image: ") + ", ".join(wrong))
            return data
        if not prompts:
            return data
        seed_list = seeds or [fanout.draw_seed()]
        rows = [(p, seed_list[0]) for p in prompts] if len(prompts) > 1 else [(prompts[0], s) for s in seed_list]
        try:
            overrides = fanout.parse_overrides(data.get("overrides") or "", list(models))
        except ValueError as e:
            self.add_error("overrides", str(e))
            return data
        plan = fanout.Plan(rows=rows, models=list(models), negative_prompt=data.get("negative_prompt") or "",
                           aspect=data.get("aspect") or "", image=image, overrides=overrides)
        try:
            plan.build()
        except ProviderError as e:
            self.add_error(None, f"{e.message}")
            return data
        data["plan"] = plan
        if not data.get("name"):
            data["name"] = prompts[0][:60]
        return data


class EditForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    name = _limited("Name", NAME_MAX, required=True)
    visibility = forms.ChoiceField(choices=Comparison.VISIBILITIES)
