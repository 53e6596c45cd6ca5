"""The finance UI's filter forms: GET parameters read strictly (a bad value is a form error shown
on the page, never a silently wider list)."""

from django import forms

from pgi.money import is_payable_currency
from settlements.models import BatchStatus
from settlements.reconciliation.services import upload_max_bytes, upload_too_large_message

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


# --- Reconciliation ------------------------------------------------------------------------------

RESOLVED_CHOICES = [("open", "open"), ("resolved", "resolved"), ("all", "open and resolved")]


class RunFilterForm(forms.Form):
    gateway = forms.CharField(label="Gateway", max_length=32, required=False, strip=True)
    day_from = forms.DateField(label="Day from (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(label="Day to (UTC, inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("day_from") and data.get("day_to") and data["day_from"] > data["day_to"]:
            self.add_error("day_to", "The end of the range is before its start.")
        return data


class ExceptionFilterForm(forms.Form):
    """The filters of a run's exceptions (and of all exceptions, with gateway and days)."""

    status = forms.ChoiceField(label="Status", choices=RESOLVED_CHOICES, required=False)
    category = forms.ChoiceField(label="Category", required=False)
    gateway = forms.CharField(label="Gateway", max_length=32, required=False, strip=True)
    currency = forms.CharField(label="Currency", max_length=3, required=False, strip=True, widget=forms.TextInput(attrs={"size": 4}))
    amount_min = forms.DecimalField(label="Amount from", required=False, min_value=0, max_digits=18, decimal_places=4)
    amount_max = forms.DecimalField(label="Amount to", required=False, min_value=0, max_digits=18, decimal_places=4)
    overdue = forms.BooleanField(label="Overdue only", required=False)
    q = forms.CharField(
        label="Search", max_length=200, required=False, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "payment, refund or gateway reference"}),
    )

    def __init__(self, *args, categories, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "any"), *categories]

    clean_currency = BatchFilterForm.clean_currency

    def clean(self):
        data = super().clean()
        low, high = data.get("amount_min"), data.get("amount_max")
        if low is not None and high is not None and low > high:
            self.add_error("amount_max", "The end of the range is below its start.")
        return data

    def selector_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "category": data.get("category") or None,
            "gateway": data.get("gateway") or None,
            "currency": data.get("currency") or None,
            "amount_min": data.get("amount_min"),
            "amount_max": data.get("amount_max"),
            "resolved": {"open": False, "resolved": True}.get(data.get("status") or "open"),
            "overdue": True if data.get("overdue") else None,
            "search": data.get("q") or "",
        }


class ResolveForm(forms.Form):
    resolution = forms.ChoiceField(label="Resolution")
    note = forms.CharField(
        label="Note", max_length=2000, strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What was checked, what was done, references"}),
    )

    def __init__(self, *args, resolutions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resolution"].choices = [("", "choose…"), *resolutions]


class ReportUploadForm(forms.Form):
    gateway = forms.ChoiceField(label="Gateway")
    day = forms.DateField(label="Day the report covers (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    file = forms.FileField(label="Report file")
    replace_with_empty = forms.BooleanField(
        label="Replace with an empty report", required=False,
        help_text="Only when the gateway's report for the day really has no line: a file with only its "
        "header row is refused while the day's current report has lines.",
    )

    def __init__(self, *args, gateways, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = [(code, code) for code in gateways]
        limit = upload_max_bytes()
        self.fields["file"].help_text = (
            f"The gateway's settlement report as downloaded (CSV), at most {limit / (1024 * 1024):g} MB; "
            "a larger one goes to the inbox folder or `manage.py reconcile --file`."
        )

    def clean_file(self):
        # From the size the upload handler counted, before the file is read.
        upload = self.cleaned_data["file"]
        if upload.size > upload_max_bytes():
            raise forms.ValidationError(upload_too_large_message(upload.size), code="REPORT_TOO_LARGE")
        return upload
