"""Forms of the budgets and prices pages: every error on its field."""

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from playground.providers import registry

from .models import PERIODS, Budget

MONEY, OWN = "money", "own"


class BudgetForm(forms.Form):
    scope = forms.ChoiceField(label="For", help_text="The whole team or one member.")
    provider = forms.ChoiceField(label="Provider", required=False)
    unit = forms.ChoiceField(label="Counted in")
    amount = forms.DecimalField(label="Limit", max_digits=14, decimal_places=4,
                                help_text="More than 0, at most 4 decimals.")
    period = forms.ChoiceField(choices=PERIODS, initial=Budget.MONTH, label="Period",
                               help_text="Calendar periods start at midnight in the team's time zone.")
    kind = forms.ChoiceField(choices=[("hard", "Hard: refuse a run that would go over"),
                                      ("soft", "Soft: warn, allow")], initial="hard", label="Kind")

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        members = get_user_model().objects.filter(memberships__team=team).order_by("username")
        self.members = {str(u.pk): u for u in members}
        self.fields["scope"].choices = [("team", "The whole team")] + [
            (pk, f"Member: {u.get_username()}") for pk, u in self.members.items()]
        self.fields["provider"].choices = [("", "All providers (in money)")] + registry.choices()
        money = settings.MONEY_CURRENCY
        self.fields["unit"].choices = [(MONEY, f"Money ({money})"), (OWN, "The provider's own unit")]

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError("A limit must be more than 0.")
        return amount

    def clean(self):
        data = super().clean()
        provider, unit = data.get("provider"), data.get("unit")
        if unit == OWN and not provider:
            self.add_error("unit", "A budget for all providers is counted in money: choose one provider "
                                   "to count in its own credits.")
        return data

    def save(self, by) -> Budget:
        d = self.cleaned_data
        provider = d["provider"]
        if d["unit"] == OWN:
            unit = registry.get(provider).unit.code
        else:
            unit = settings.MONEY_CURRENCY
        return Budget.objects.create(
            team=self.team, member=None if d["scope"] == "team" else self.members[d["scope"]],
            provider=provider, unit=unit, amount=d["amount"], period=d["period"], hard=d["kind"] == "hard",
            created_by=by)


class PriceForm(forms.Form):
    provider = forms.ChoiceField(widget=forms.HiddenInput)
    price = forms.DecimalField(label="Price per credit", max_digits=14, decimal_places=6, required=False,
                               help_text=f"In {settings.MONEY_CURRENCY}, at most 6 decimals. "
                                         "Empty: back to the instance's price.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(k, label) for k, label in registry.choices()
                                           if not registry.get(k).unit.is_currency]

    def clean_price(self):
        price = self.cleaned_data["price"]
        if price is not None and price < Decimal("0"):
            raise forms.ValidationError("A price cannot be negative.")
        return price


class AdjustmentForm(forms.Form):
    """A signed correction in a provider's own unit (e.g. a refund), with a reason."""

    provider = forms.ChoiceField(label="Provider")
    member = forms.ChoiceField(label="Member", required=False)
    amount = forms.DecimalField(label="Amount", max_digits=14, decimal_places=4,
                                help_text="In the provider's own unit; negative for a refund.")
    note = forms.CharField(label="Reason", max_length=500, widget=forms.TextInput(attrs={"maxlength": 500}))

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        members = get_user_model().objects.filter(memberships__team=team).order_by("username")
        self.members = {str(u.pk): u for u in members}
        self.fields["provider"].choices = registry.choices()
        self.fields["member"].choices = [("", "No member (the team)")] + [
            (pk, u.get_username()) for pk, u in self.members.items()]

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("An adjustment of 0 changes nothing.")
        return amount

    def clean_note(self):
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError("Say why (it is kept with the entry).")
        return note

    def save(self, by):
        from .book import adjust

        d = self.cleaned_data
        return adjust(team=self.team, provider=d["provider"], amount=d["amount"], note=d["note"], by=by,
                      user=self.members.get(d["member"]) if d["member"] else None)


class TokenBudgetForm(forms.Form):
    """A budget of one API token, set by its owner: a hard limit on what runs
    through that token may use, in money (all providers) or in one
    provider's own unit (that provider only)."""

    amount = forms.DecimalField(label="Budget", required=False, max_digits=14, decimal_places=4,
                                help_text="Runs through this token stop when it is used up. Empty: no budget "
                                          "of its own (team and member budgets apply anyway).")
    counted_in = forms.ChoiceField(label="Counted in", required=False)
    period = forms.ChoiceField(choices=PERIODS, initial=Budget.MONTH, label="Period", required=False)

    def __init__(self, *args, required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Required: setting a token's budget. Otherwise (a new token) an empty amount is no budget.
        self.fields["amount"].required = required
        money = settings.MONEY_CURRENCY
        self.fields["counted_in"].choices = [(MONEY, f"Money ({money}), all providers")] + [
            (key, f"{cls.unit.label}, {cls.label} only") for key, cls in registry.adapter_classes().items()]

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount is not None and amount <= 0:
            raise forms.ValidationError("A budget must be more than 0.")
        return amount

    def clean(self):
        data = super().clean()
        if data.get("amount") is not None:
            for name in ("counted_in", "period"):
                if name in data and not data[name]:
                    self.add_error(name, "Choose one for the budget.")
        return data

    def save(self, token, by) -> Budget | None:
        """The token's budget, replacing the one it had (None: no amount given, nothing changed)."""
        from django.db import transaction

        d = self.cleaned_data
        if d["amount"] is None:
            return None
        provider = "" if d["counted_in"] == MONEY else d["counted_in"]
        unit = registry.get(provider).unit.code if provider else settings.MONEY_CURRENCY
        with transaction.atomic():
            Budget.objects.filter(api_token=token).delete()
            return Budget.objects.create(team_id=token.team_id, member_id=token.user_id, api_token=token,
                                         provider=provider, unit=unit, amount=d["amount"], period=d["period"],
                                         hard=True, created_by=by)
