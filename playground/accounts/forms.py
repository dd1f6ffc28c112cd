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

