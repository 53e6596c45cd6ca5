"""The simulator's ledger, read-only: what the pretend gateway believes it charged.

It plays the remote side of the simulator gateway. PGI's own record of a payment is the Payment;
this table is only for seeing what the sandbox gateway did (declines, pending charges, timeouts).
"""

from django.contrib import admin

from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.money import format_money

from .models import SimulatorCharge


@admin.register(SimulatorCharge)
class SimulatorChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "reference",
        "payment_id",
        "amount_display",
        "status",
        "decline_code",
        "account",
        "merchant_code",
        "created_at",
    ]
    list_filter = ["status", "decline_code"]
    search_fields = ["=reference", "=idempotency_key", "=account", "=merchant_code"]
    search_help_text = "Exact simulator reference, PGI payment id, account or merchant code."
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = [
        "reference",
        "payment_id",
        "amount_display",
        "status",
        "decline_code",
        "account",
        "merchant_code",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="PGI payment id", ordering="idempotency_key")
    def payment_id(self, obj: SimulatorCharge) -> str:
        return obj.idempotency_key

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: SimulatorCharge) -> str:
        return format_money(obj.amount, obj.currency)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Simulator ledger: the pretend gateway's own charges", **(extra_context or {})}
        return super().changelist_view(request, extra_context)
