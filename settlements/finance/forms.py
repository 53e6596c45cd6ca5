"""The finance UI's filter forms: GET parameters read strictly (a bad value is a form error shown
on the page, never a silently wider list)."""

from django import forms

from pgi.money import is_payable_currency
from settlements.models import BatchStatus

from .selectors import BatchFilters


class BatchFilterForm(forms.Form):
    merchant = forms.CharField(label="Merchant code", max_length=64, required=False, strip=True)
    currency = forms.CharField(
        label="Currency", max_length=3, required=False, strip=True, widget=forms.TextInput(attrs={"size": 4})
    )
    status = forms.ChoiceField(label="Payout status", choices=[("", "any")] + list(BatchStatus.choices), required=False)
    cutoff_from = forms.DateField(
        label="Cut-off from (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}),
    )
    cutoff_to = forms.DateField(
        label="Cut-off to (UTC, inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].upper()
        if currency and not is_payable_currency(currency):
            raise forms.ValidationError("Not an ISO 4217 currency code (e.g. EUR).")
        return currency

    def clean(self):
        data = super().clean()
        start, end = data.get("cutoff_from"), data.get("cutoff_to")
        if start and end and start > end:
            self.add_error("cutoff_to", "The end of the range is before its start.")
        return data

    def filters(self) -> BatchFilters:
        return BatchFilters(**self.cleaned_data)
