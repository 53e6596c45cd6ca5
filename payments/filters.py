from datetime import timezone

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from pgi.api.filters import MerchantScopedFilterSet
from pgi.api.serializers import IBAN_SHAPE
from pgi.money import is_payable_currency

from .models import Payment, PaymentStatus


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC.

    ISO 8601 allows UTC offsets up to ±23:59 but PostgreSQL only ±15:59, so the value is sent to
    the database in UTC; one that has no UTC equivalent (year 1 at +23:00) is invalid input.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(timezone.utc)
        except OverflowError as exc:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc


def validate_currency(value: str) -> None:
    if not is_payable_currency(value):
        raise forms.ValidationError("Not an ISO 4217 currency code (upper case, e.g. USD).")


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class AccountFilterField(forms.CharField):
    """An account as POST stores it: an IBAN compact and upper case, whatever spacing or case it is
    given in; any other account id as given."""

    def to_python(self, value):
        value = super().to_python(value)
        compact = value.replace(" ", "").upper()
        return compact if IBAN_SHAPE.fullmatch(compact) else value


class AccountFilter(django_filters.CharFilter):
    field_class = AccountFilterField


class PaymentFilter(MerchantScopedFilterSet):
    other_params = ("cursor", "limit")  # read by CreatedCursorPagination
    listed = "payments"

    status = django_filters.MultipleChoiceFilter(
        choices=PaymentStatus.choices, help_text="One or more statuses: `?status=Completed&status=Failed`."
    )
    createdFrom = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    createdTo = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."
    )
    reference = django_filters.CharFilter(
        field_name="reference", max_length=64, help_text="Exact merchant reference."
    )
    currency = django_filters.CharFilter(
        field_name="currency", max_length=3, validators=[validate_currency], help_text="ISO 4217 code."
    )
    fromAccount = AccountFilter(
        field_name="from_account",
        max_length=64,
        help_text="Exact paying account; an IBAN matches however it is spaced or cased.",
    )
    merchant = django_filters.CharFilter(
        field_name="merchant__code",
        max_length=64,
        help_text="Merchant code. For a platform key; a merchant key may give only its own.",
    )

    class Meta:
        model = Payment
        fields: list[str] = []
