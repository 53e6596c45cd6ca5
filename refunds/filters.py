"""The query parameters of the refund lists, read as strictly as the payments list's."""

import django_filters
from django import forms

from payments.filters import UtcIsoDateTimeFilter, validate_currency
from payments.models import PAYMENT_ID_PREFIX
from pgi.api.filters import MerchantScopedFilterSet, StrictFilterSet
from pgi.ids import is_id

from .models import Refund, RefundStatus

PAGE_PARAMS = ("cursor", "limit")  # read by CreatedCursorPagination


def validate_payment_id(value: str) -> None:
    # An id no payment can have would list nothing and look like "no refunds": it is refused.
    if not is_id(value, PAYMENT_ID_PREFIX):
        raise forms.ValidationError("Not a payment id (pay_…).")


class RefundPageFilter(StrictFilterSet):
    """A payment's refunds: no filters, only the page's parameters (no repeats, no empty values)."""

    other_params = PAGE_PARAMS

    class Meta:
        model = Refund
        fields: list[str] = []


class RefundFilter(MerchantScopedFilterSet):
    other_params = PAGE_PARAMS
    listed = "refunds"

    status = django_filters.MultipleChoiceFilter(
        choices=RefundStatus.choices, help_text="One or more statuses: `?status=Pending&status=Failed`."
    )
    paymentId = django_filters.CharFilter(
        field_name="payment_id", max_length=32, validators=[validate_payment_id], help_text="The refunded payment's id."
    )
    currency = django_filters.CharFilter(
        field_name="currency", max_length=3, validators=[validate_currency], help_text="ISO 4217 code."
    )
    createdFrom = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    createdTo = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601).")
    merchant = django_filters.CharFilter(
        field_name="merchant__code",
        max_length=64,
        help_text="Merchant code. For a platform key; a merchant key may give only its own.",
    )

    class Meta:
        model = Refund
        fields: list[str] = []
