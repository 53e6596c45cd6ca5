"""Staff admin for payments: find a payment, see what it is and why it is in its status.

Read-only on purpose. Amounts are what the merchant asked for and the gateway charged; a status
changes only through payments.services.payment_transition (row lock, state machine, history). So
staff cannot add, edit or delete a payment here.
"""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.merchants.models import MerchantCurrency
from pgi.money import format_money

from .models import GatewayAttempt, Payment, PaymentStatus, PaymentStatusChange
from .services import payment_recovery_restart


def instant(value: datetime | None) -> str:
    """UTC to the millisecond: the admin's default format stops at minutes, and a payment's
    history often happens within one second."""
    if value is None:
        return "-"
    return timezone.localtime(value, dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CurrencyFilter(admin.SimpleListFilter):
    # The currencies merchants are enabled for: a small table, instead of a DISTINCT over payments.
    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        codes = MerchantCurrency.objects.order_by("currency").values_list("currency", flat=True).distinct()
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class GatewayFilter(admin.SimpleListFilter):
    # The configured gateways, instead of a DISTINCT over payments.
    title = "gateway"
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        return [(code, code) for code in settings.PGI_GATEWAYS]

    def queryset(self, request, queryset):
        return queryset.filter(gateway=self.value()) if self.value() else queryset


class PaymentStatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The payment's status history, oldest first: each line says who moved it and why."""

    model = PaymentStatusChange
    fields = ["at", "from_status", "to_status", "source", "reason", "failure_code"]
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    verbose_name = "status change"
    verbose_name_plural = "status history"

    @admin.display(description="at (UTC)")
    def at(self, obj: PaymentStatusChange) -> str:
        return instant(obj.created_at)


class GatewayAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every call made to a gateway for the payment: which gateway, with which idempotency key, how
    it went and how long it took."""

    model = GatewayAttempt
    fields = ["at", "operation", "gateway", "idempotency_key", "outcome", "error_code", "message", "latency"]
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    verbose_name = "gateway attempt"
    verbose_name_plural = "gateway attempts"

    @admin.display(description="at (UTC)")
    def at(self, obj: GatewayAttempt) -> str:
        return instant(obj.created_at)

    @admin.display(description="latency")
    def latency(self, obj: GatewayAttempt) -> str:
        return f"{obj.latency_ms} ms"


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged for staff"), ("recovering", "Outcome unknown, recovery running")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(needs_attention=True)
        if self.value() == "recovering":
            return queryset.filter(needs_attention=False).filter(
                Q(status=PaymentStatus.PROCESSING) | ~Q(pending_operation="")
            )
        return queryset


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "merchant_code", "amount_display", "status", "gateway", "attention", "created_list"]
    list_filter = [AttentionFilter, "status", CurrencyFilter, GatewayFilter, "merchant"]
    actions = ["restart_recovery"]
    list_select_related = ["merchant"]
    date_hierarchy = "created_at"
    # The exact count of a large table is a full scan; the admin shows "Show all" instead.
    show_full_result_count = False
    list_per_page = 50
    search_fields = ["id", "reference", "from_account", "gateway_reference", "merchant__code"]
    search_help_text = "Exact payment id, reference, fromAccount, gateway reference or merchant code."
    inlines = [PaymentStatusChangeInline, GatewayAttemptInline]
    fieldsets = [
        (
            "Payment",
            {
                "fields": [
                    "id",
                    "merchant",
                    "amount_display",
                    "status",
                    "timestamp",
                    "failure_code",
                    "failure_message",
                    "refunded_amount_display",
                ]
            },
        ),
        (
            "Gateway",
            {
                "fields": [
                    "gateway",
                    "gateway_reference",
                    "capture",
                    "captured_amount_display",
                    "authorization_expiry",
                    "pending_operation",
                ]
            },
        ),
        (
            "Recovery",
            {"fields": ["needs_attention", "attention_reason", "recovery_attempts", "next_recovery"]},
        ),
        ("Request", {"fields": ["from_account", "reference", "description", "metadata", "api_key_link"]}),
        ("Record", {"fields": ["created", "updated"]}),
    ]

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, so that a search is an index lookup, not a scan of every payment
        with LIKE '%…%'. A payment id goes straight to the primary key."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.lower().startswith("pay_"):
            return queryset.filter(pk=term.lower()), False
        compact = term.replace(" ", "").upper()  # IBANs are stored compact and upper case
        return (
            queryset.filter(
                Q(pk=term)
                | Q(reference=term)
                | Q(from_account__in={term, compact})
                | Q(gateway_reference=term)
                | Q(merchant__code=term.lower())
            ),
            False,
        )

    @admin.display(description="attention", boolean=True, ordering="needs_attention")
    def attention(self, obj: Payment) -> bool:
        return obj.needs_attention

    @admin.display(description="captured amount")
    def captured_amount_display(self, obj: Payment) -> str:
        return "-" if obj.captured_amount is None else format_money(obj.captured_amount, obj.currency)

    @admin.display(description="authorization expires (UTC)")
    def authorization_expiry(self, obj: Payment) -> str:
        return instant(obj.authorization_expires_at)

    @admin.display(description="next recovery look (UTC)")
    def next_recovery(self, obj: Payment) -> str:
        due = obj.status == PaymentStatus.PROCESSING or obj.pending_operation
        return instant(obj.next_recovery_at) if due and not obj.needs_attention else "-"

    @admin.action(description="Restart recovery of the selected flagged payments", permissions=["view"])
    def restart_recovery(self, request, queryset):
        restarted = [
            payment_id
            for payment_id in queryset.filter(needs_attention=True).values_list("id", flat=True)
            if payment_recovery_restart(payment_id=payment_id, staff_user=request.user.get_username())
        ]
        self.message_user(
            request,
            f"Recovery restarted for {len(restarted)} payment(s); the next run looks at them again."
            if restarted
            else "None of the selected payments was flagged.",
            messages.SUCCESS if restarted else messages.WARNING,
        )

    @admin.display(description="merchant", ordering="merchant__code")
    def merchant_code(self, obj: Payment) -> str:
        return obj.merchant.code

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="refunded amount")
    def refunded_amount_display(self, obj: Payment) -> str:
        return format_money(obj.refunded_amount, obj.currency)

    @admin.display(description="timestamp (reached this status, UTC)", ordering="status_changed_at")
    def timestamp(self, obj: Payment) -> str:
        return instant(obj.status_changed_at)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Payment) -> str:
        return instant(obj.created_at)

    @admin.display(description="updated (UTC)", ordering="updated_at")
    def updated(self, obj: Payment) -> str:
        return instant(obj.updated_at)

    @admin.display(description="API key")
    def api_key_link(self, obj: Payment) -> str:
        if obj.api_key_id is None:
            return "-"
        url = reverse("admin:merchants_apikey_change", args=[obj.api_key_id])
        return format_html('<a href="{}">{}</a>', url, obj.api_key)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created_list(self, obj: Payment) -> str:
        return timezone.localtime(obj.created_at, dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
