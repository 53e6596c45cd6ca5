import django_filters

from .models import Payment, PaymentStatus


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=PaymentStatus.choices, help_text="One or more statuses: `?status=Completed&status=Failed`."
    )
    createdFrom = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    createdTo = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."
    )
    reference = django_filters.CharFilter(field_name="reference", help_text="Exact merchant reference.")
    currency = django_filters.CharFilter(field_name="currency", help_text="ISO 4217 code.")

    class Meta:
        model = Payment
        fields: list[str] = []
