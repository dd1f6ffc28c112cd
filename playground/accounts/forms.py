from django import forms


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


class NewTeamForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, label="Team name")


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=[("member", "Member"), ("owner", "Owner")], initial="member")
    note = forms.CharField(max_length=100, required=False, strip=True, label="For (optional)",
                           help_text="A name to recognise the invite by; only owners see it.")



class ApiTokenForm(forms.Form):
    """A new personal API token: a name, when it expires, which models it may
    use and how fast. Every error is on its field; the secret is made only
    when all of it is valid."""

    NEVER, DAYS_30, DAYS_90, ON_DATE = "never", "30", "90", "date"

    name = forms.CharField(max_length=100, strip=True, label="Name",
                           widget=forms.TextInput(attrs={"maxlength": 100, "placeholder": "ci, notebook, ..."}),
                           help_text="To tell your tokens apart (at most 100 characters).")
    expires = forms.ChoiceField(label="Expires", initial=NEVER, required=False, choices=[
        (NEVER, "Never"), (DAYS_30, "In 30 days"), (DAYS_90, "In 90 days"), (ON_DATE, "On a date")])
    expires_on = forms.DateField(label="Expiry date", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="With \"On a date\": the token stops working at the end of that day.")
    models = forms.MultipleChoiceField(label="Models", required=False,
                                       widget=forms.SelectMultiple(attrs={"size": 6}),
                                       help_text="None selected: every model.")
    rate_per_minute = forms.IntegerField(label="Requests per minute", required=False, min_value=1, max_value=10000,
                                         help_text="Empty: the instance default.")

    def __init__(self, *args, zone, **kwargs):
        from .apitokens import model_choices

        super().__init__(*args, **kwargs)
        self.zone = zone
        self.fields["models"].choices = model_choices()
        self.fields["models"].error_messages["invalid_choice"] = "%(value)s is not a configured model."

    def clean(self):
        from datetime import datetime, time, timedelta

        from django.utils import timezone

        data = super().clean()
        choice, day = data.get("expires"), data.get("expires_on")
        if day is not None and not choice:
            choice = self.ON_DATE  # a client that sends only the date
        today = timezone.now().astimezone(self.zone).date()
        if day is not None and choice not in (None, self.ON_DATE):
            self.add_error("expires_on", "Choose \"On a date\" to use a date, or clear it.")
        elif choice == self.ON_DATE:
            if day is None:
                self.add_error("expires_on", "Give the date the token stops working.")
            elif day <= today:
                self.add_error("expires_on", "The expiry date must be in the future (after today).")
            else:
                data["expires_at"] = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone)
        elif choice in (self.DAYS_30, self.DAYS_90):
            data["expires_at"] = timezone.now() + timedelta(days=int(choice))
        return data

    def token_fields(self) -> dict:
        d = self.cleaned_data
        return {"expires_at": d.get("expires_at"), "allowed_models": list(d["models"]),
                "rate_per_minute": d["rate_per_minute"]}
