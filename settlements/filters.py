"""The query parameters of the settlement lists, read as strictly as the payments list's."""

import django_filters

from payments.filters import UtcIsoDateTimeFilter, validate_currency
from pgi.api.filters import MerchantScopedFilterSet, StrictFilterSet

from .models import BatchStatus, SettlementBatch, SettlementLine

PAGE_PARAMS = ("cursor", "limit")  # read by the paginators


class SettlementFilter(MerchantScopedFilterSet):
    other_params = PAGE_PARAMS
    listed = "settlements"

    payoutStatus = django_filters.MultipleChoiceFilter(
        field_name="status",
        choices=BatchStatus.choices,
        help_text="One or more payout statuses: `?payoutStatus=pending&payoutStatus=held`.",
    )
    currency = django_filters.CharFilter(
        field_name="currency", max_length=3, validators=[validate_currency], help_text="ISO 4217 code."
    )
    cutoffFrom = UtcIsoDateTimeFilter(field_name="cutoff", lookup_expr="gte", help_text="Cut-off at or after (ISO 8601).")
    cutoffTo = UtcIsoDateTimeFilter(field_name="cutoff", lookup_expr="lt", help_text="Cut-off before (ISO 8601).")
    merchant = django_filters.CharFilter(
        field_name="merchant__code",
        max_length=64,
        help_text="Merchant code. For a platform key; a merchant key may give only its own.",
    )

    class Meta:
        model = SettlementBatch
        fields: list[str] = []

    def is_valid(self) -> bool:
        """Also refuses a window that ends before it starts (it would list nothing, silently)."""
        if not super().is_valid():
            return False
        start, end = self.form.cleaned_data.get("cutoffFrom"), self.form.cleaned_data.get("cutoffTo")
        if start is not None and end is not None and start > end:
            self.param_errors["cutoffTo"] = ["Must not be before cutoffFrom."]
            return False
        return True


class SettlementLinePageFilter(StrictFilterSet):
    """A batch's lines: no filters, only the page's parameters."""

    other_params = PAGE_PARAMS

    class Meta:
        model = SettlementLine
        fields: list[str] = []
