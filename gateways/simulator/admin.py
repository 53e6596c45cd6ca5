"""The simulator's ledger, read-only: what the pretend gateways believe they charged and refunded.

It plays the remote side of the simulator gateways (one ledger per gateway code). PGI's own record
of a payment is the Payment; these tables are only for seeing what the sandbox gateways did
(declines, authorizations, captures, refunds, pending charges, timeouts).
"""

from django.contrib import admin

from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.money import format_money

from .models import SimulatorCharge, SimulatorRefund


class SimulatorRefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SimulatorRefund
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["reference", "refund_id", "amount_display", "status", "error_code", "created_at"]

    @admin.display(description="amount")
    def amount_display(self, obj: SimulatorRefund) -> str:
        return format_money(obj.amount, obj.currency)


@admin.register(SimulatorCharge)
class SimulatorChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # The rest (gateway, captured amount, account, merchant) is on each charge's page: the list fits a laptop.
    list_display = ["reference", "payment_id", "amount_display", "status", "decline_code", "created"]
    list_filter = ["gateway", "status", "capture", "decline_code"]
    search_fields = ["=reference", "=idempotency_key", "=account", "=merchant_code"]
    search_help_text = "Exact simulator reference, PGI payment id, account or merchant code."
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [SimulatorRefundInline]
    fields = [
        "reference",
        "gateway",
        "payment_id",
        "amount_display",
        "capture",
        "status",
        "decline_code",
        "captured_display",
        "captured_at",
        "account",
        "merchant_code",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: SimulatorCharge) -> str:
        return instant(obj.created_at)

    @admin.display(description="PGI payment id", ordering="idempotency_key")
    def payment_id(self, obj: SimulatorCharge) -> str:
        return obj.idempotency_key

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: SimulatorCharge) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="captured", ordering="captured_amount")
    def captured_display(self, obj: SimulatorCharge) -> str:
        return format_money(obj.captured_amount, obj.currency) if obj.captured_amount is not None else "-"

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Simulator ledger: the pretend gateway's own charges", **(extra_context or {})}
        return super().changelist_view(request, extra_context)


@admin.register(SimulatorRefund)
class SimulatorRefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "gateway", "refund_id", "charge", "amount_display", "status", "error_code", "created_at"]
    list_filter = ["gateway", "status"]
    search_fields = ["=reference", "=refund_id", "=charge__reference", "=charge__idempotency_key"]
    search_help_text = "Exact simulator refund reference, PGI refund id, simulator charge reference or PGI payment id."
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ["charge"]
    fields = [
        "reference",
        "gateway",
        "refund_id",
        "charge",
        "payment_id",
        "amount_display",
        "status",
        "error_code",
        "error_message",
        "reason",
        "created_at",
    ]

    @admin.display(description="PGI payment id")
    def payment_id(self, obj: SimulatorRefund) -> str:
        return obj.charge.idempotency_key

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: SimulatorRefund) -> str:
        return format_money(obj.amount, obj.currency)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Simulator refunds: the pretend gateway's own refunds", **(extra_context or {})}
        return super().changelist_view(request, extra_context)
