"""Staff admin for payments: find a payment, see what it is and why it is in its status.

Read-only on purpose, for every role (pgi/staff/roles.py). Amounts are what the merchant asked for
and the gateway charged; a status changes only through payments.services.payment_transition (row
lock, state machine, history). So staff cannot add, edit or delete a payment here; restarting
recovery needs its own permission, and fromAccount shows whole only with
payments.view_full_account (pgi/admin_masking.py). The list shows totals per currency of the rows
it filters and exports them as CSV; the admin's index page shows the day's figures.
"""

import csv
from collections.abc import Iterator

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from pgi.admin_format import instant, spreadsheet_safe
from pgi.admin_masking import AccountMaskMixin, account_masked, may_see_full_accounts
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.admin_site import Panel
from pgi.audit.admin_hooks import admin_actor
from pgi.merchants.models import MerchantCurrency
from pgi.money import format_money, quantize

from .models import GatewayAttempt, Payment, PaymentStatus, PaymentStatusChange
from .selectors import payment_day_figures, payments_needing_attention
from .services import payment_recovery_restart
from .states import TRANSITIONS

# Reached only through a refund, which PGI takes once the refunds app is installed.
REFUND_STATES = frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})


def reachable_statuses() -> list[str]:
    """The statuses a payment can be in: the state machine walked from Pending, in its order."""
    seen, frontier = {PaymentStatus.PENDING.value}, [PaymentStatus.PENDING.value]
    while frontier:
        for following in TRANSITIONS[frontier.pop()]:
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    if not apps.is_installed("refunds"):
        seen -= REFUND_STATES
    return [status for status in PaymentStatus.values if status in seen]


class StatusFilter(admin.SimpleListFilter):
    # Only statuses a payment can reach: no "Refunded" to pick while PGI takes no refunds.
    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request, model_admin):
        return [(status, PaymentStatus(status).label) for status in reachable_statuses()]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


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


class PaymentPartInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Part of the payment: whoever may see the payment sees these rows too."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("payments.view_payment")


class PaymentStatusChangeInline(PaymentPartInline):
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


class GatewayAttemptInline(PaymentPartInline):
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
            return queryset.filter(needs_attention=False).outcome_unknown()
        return queryset


@admin.register(Payment)
class PaymentAdmin(AccountMaskMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "merchant_code", "amount_display", "status", "gateway", "attention", "created"]
    list_filter = [AttentionFilter, StatusFilter, CurrencyFilter, GatewayFilter, "merchant"]
    actions = ["restart_recovery"]
    list_select_related = ["merchant"]
    date_hierarchy = "created_at"
    # The exact count of a large table is a full scan; the admin shows "Show all" instead.
    show_full_result_count = False
    list_per_page = 50
    search_fields = ["id", "reference", "from_account", "gateway_reference", "merchant__code"]
    search_help_text = "Exact payment id, reference, fromAccount, gateway reference or merchant code."
    masked_fields = {"from_account": "from_account_masked"}
    # Other apps add theirs after the status history: see payment_inline_add.
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
            {"fields": ["attention_state", "recovery_attempts", "next_recovery", "operations"]},
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
        found = Q(pk=term) | Q(reference=term) | Q(gateway_reference=term) | Q(merchant__code=term.lower())
        # By account only for staff who may see accounts whole: for others a hit would confirm one.
        if may_see_full_accounts(request.user):
            compact = term.replace(" ", "").upper()  # IBANs are stored compact and upper case
            found |= Q(from_account__in={term, compact})
        return queryset.filter(found), False

    @admin.display(description="from account")
    def from_account_masked(self, obj: Payment) -> str:
        return account_masked(obj.from_account)

    @admin.display(description="attention", ordering="-needs_attention", empty_value="")
    def attention(self, obj: Payment) -> str:
        # Blank on a healthy row: a mark on every row (a boolean column's icon) hides the few that matter.
        if not obj.needs_attention:
            return ""
        return format_html('<span class="pgi-flag" title="{}">Flagged</span>', obj.attention_reason)

    @admin.display(description="staff attention")
    def attention_state(self, obj: Payment) -> str:
        # Said only of a flagged payment. Recovery giving up is one reason, a gateway answer that
        # contradicts the payment another: the reason says which.
        if not obj.needs_attention:
            return "-"
        kind = "ends when the gateway answers" if obj.flag_clears_on_answer else "stays until staff clear it"
        return format_html(
            '<span class="pgi-flag">Flagged</span> Staff must look: {} ({}; {})',
            obj.attention_reason,
            obj.attention_code or "no code",
            kind,
        )

    @admin.display(description="gateway operations")
    def operations(self, obj: Payment) -> str:
        """What PGI asked the gateway to do with this payment (authorize, capture, void, refund),
        each with its own idempotency key and where it stands; the attempts below are its calls."""
        rows = [
            (
                instant(op.created_at),
                op.kind,
                format_money(op.amount, obj.currency),
                op.idempotency_key,
                op.get_status_display(),
                op.attempts,
                instant(op.next_look_at) if op.in_flight else "-",
                instant(op.finished_at),
            )
            for op in obj.operations.order_by("created_at", "id")
        ]
        if not rows:
            return "-"
        head = ("sent (UTC)", "kind", "amount", "idempotency key", "status", "recovery looks", "next look (UTC)", "finished (UTC)")
        return format_html(
            '<table class="pgi-operations"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<th>{}</th>", ((h,) for h in head)),
            format_html_join("", "<tr>" + "<td>{}</td>" * len(head) + "</tr>", rows),
        )

    @admin.display(description="captured amount")
    def captured_amount_display(self, obj: Payment) -> str:
        return "-" if obj.captured_amount is None else format_money(obj.captured_amount, obj.currency)

    @admin.display(description="authorization expires (UTC)")
    def authorization_expiry(self, obj: Payment) -> str:
        return instant(obj.authorization_expires_at)

    @admin.display(description="next recovery look (UTC)")
    def next_recovery(self, obj: Payment) -> str:
        return instant(obj.next_recovery_at) if obj.outcome_unknown and not obj.needs_attention else "-"

    def has_restart_recovery_permission(self, request) -> bool:
        return request.user.has_perm("payments.restart_recovery_payment")

    @admin.action(description="Restart recovery of the selected flagged payments", permissions=["restart_recovery"])
    def restart_recovery(self, request, queryset):
        restarted = [
            payment_id
            for payment_id in queryset.filter(needs_attention=True).values_list("id", flat=True)
            if payment_recovery_restart(
                payment_id=payment_id, staff_user=request.user.get_username(), actor=admin_actor(request)
            )
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


    # --- Totals and CSV export of the filtered rows ---------------------------------------------

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_view), name="payments_payment_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", None) and response.context_data.get("cl")
        if cl is not None:  # not on the redirect that answers an action
            response.context_data["currency_totals"] = currency_totals(cl.queryset)
            response.context_data["export_url"] = export_url(request)
        return response

    def get_changelist(self, request, **kwargs):
        return ExportChangeList if getattr(request, "_pgi_export", False) else super().get_changelist(request, **kwargs)

    def export_view(self, request):
        """The rows the list shows with the same filters, search and order, every page of them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        request._pgi_export = True
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:payments_payment_changelist") + "?e=1")
        rows = cl.queryset.values_list(*EXPORT_FIELDS).iterator(chunk_size=2000)
        lines = export_lines(rows, mask_accounts=not may_see_full_accounts(request.user))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        stamp = instant(timezone.now()).replace(":", "").replace("-", "")
        response["Content-Disposition"] = f'attachment; filename="pgi-payments-{stamp}.csv"'
        return response


def payment_inline_add(inline: type[admin.options.InlineModelAdmin]) -> None:
    """Show another app's inline on the payment's page, after its status history and before the
    gateway attempts (refunds: the payment's refunds). payments imports no app after it in the
    import order: they add theirs from their admin."""
    if inline not in PaymentAdmin.inlines:
        after = PaymentAdmin.inlines.index(PaymentStatusChangeInline) + 1
        PaymentAdmin.inlines = [*PaymentAdmin.inlines[:after], inline, *PaymentAdmin.inlines[after:]]


class ExportChangeList(ChangeList):
    def get_results(self, request):
        # The export streams every filtered row itself: no page to fetch and no count to make.
        pass


def export_url(request) -> str:
    query = request.GET.copy()
    query.pop("p", None)  # every page, not the one on screen
    url = reverse("admin:payments_payment_export")
    return f"{url}?{query.urlencode()}" if query else url


def currency_totals(queryset) -> list[dict]:
    """Count and sum of the amounts per currency of the filtered payments, in SQL."""
    rows = queryset.order_by().values("currency").annotate(count=Count("pk"), total=Sum("amount")).order_by("currency")
    return [{**row, "total": format_money(row["total"], row["currency"])} for row in rows]


# Column name in the file, field read from the database.
EXPORT_COLUMNS = [
    ("id", "id"),
    ("created_at", "created_at"),
    ("timestamp", "status_changed_at"),
    ("merchant", "merchant__code"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("status", "status"),
    ("gateway", "gateway"),
    ("gateway_reference", "gateway_reference"),
    ("reference", "reference"),
    ("from_account", "from_account"),
    ("failure_code", "failure_code"),
    ("refunded_amount", "refunded_amount"),
    ("needs_attention", "needs_attention"),
    ("attention_reason", "attention_reason"),
]
EXPORT_FIELDS = [field for _, field in EXPORT_COLUMNS]


class _Echo:
    """csv.writer wants a file; each row is handed on as the text it writes."""

    def write(self, text: str) -> str:
        return text


def export_lines(rows, *, mask_accounts: bool = False) -> Iterator[str]:
    """CSV text: amounts exact with the currency's digits, instants ISO 8601 UTC, no cell a formula;
    from_account masked (last four) with `mask_accounts`."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL)
    yield writer.writerow([name for name, _ in EXPORT_COLUMNS])
    for row in rows:
        record = dict(zip(EXPORT_FIELDS, row, strict=True))
        code = record["currency"]
        record.update(
            created_at=instant(record["created_at"]),
            status_changed_at=instant(record["status_changed_at"]),
            amount=f"{quantize(record['amount'], code):f}",
            refunded_amount=f"{quantize(record['refunded_amount'], code):f}",
            needs_attention="yes" if record["needs_attention"] else "no",
        )
        if mask_accounts:
            record["from_account"] = account_masked(record["from_account"])
        yield writer.writerow([spreadsheet_safe(str(record[field])) for field in EXPORT_FIELDS])


# --- The index page: the day's figures and the payments staff must look at ----------------------

ATTENTION_LIMIT = 25


def dashboard_context(request) -> dict:
    today = timezone.now().date()
    changelist = reverse("admin:payments_payment_changelist")
    on_day = f"created_at__year={today.year}&created_at__month={today.month}&created_at__day={today.day}"
    needing = payments_needing_attention()
    listed = list(needing[:ATTENTION_LIMIT])
    return {
        "day": today.isoformat(),
        "day_url": f"{changelist}?{on_day}",
        "figures": [
            {
                "gateway": f.gateway,
                "currency": f.currency,
                "payments": f.payments,
                "accepted": f.accepted,
                "failed": f.failed,
                "open": f.open,
                "success_rate": f.success_rate,
                "charged": format_money(f.charged, f.currency),
                "url": f"{changelist}?{on_day}&currency={f.currency}" + (f"&gateway={f.gateway}" if f.gateway else ""),
            }
            for f in payment_day_figures(day=today)
        ],
        "attention": [
            {
                "payment": p,
                "url": reverse("admin:payments_payment_change", args=[p.pk]),
                "amount": format_money(p.amount, p.currency),
                "created": instant(p.created_at),
                "why": p.attention_reason
                if p.needs_attention
                else f"No final answer from {p.gateway} after {p.recovery_attempts} recovery look(s).",
            }
            for p in listed
        ],
        "attention_total": needing.count() if len(listed) == ATTENTION_LIMIT else len(listed),
        "flagged_url": f"{changelist}?attention=yes",
        "recovering_url": f"{changelist}?attention=recovering",
    }


admin.site.register_panel(
    Panel(
        template="admin/payments/dashboard.html",
        context=dashboard_context,
        visible=lambda request: request.user.has_perm("payments.view_payment"),
    )
)
