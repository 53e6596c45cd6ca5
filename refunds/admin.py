"""Staff admin for refunds: find a refund, see where it stands, and act on the few that need staff.

Read-only like the payments: a refund's status changes only through refunds.services (the
payment's row lock, the history line, the signal). Staff act through three actions, each behind a
permission of its own: retry a Failed refund (as a new refund), cancel a Pending one that never
reached the gateway (with a reason, on a confirmation page), restart a flagged one. The refund's
page offers the same three as buttons (act_view), through the same action methods. Bulk files are
in admin_files; the payment's page lists its refunds (payment_inline_add).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.db.models.fields.json import KT
from django.http import Http404
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from payments.admin import GatewayFilter, payment_inline_add
from payments.models import Payment
from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.errors import BusinessRuleViolation
from pgi.money import format_money

from .models import Refund, RefundStatus, RefundStatusChange
from .services import refund_cancel, refund_restart, refund_retry

# One request acts on at most this many refunds (each is its own transaction under its payment's lock).
ACTION_LIMIT = 200

# The buttons on a refund's page: action, label, whether the refund's state allows it. Cancel is
# offered on any Pending refund: whether it may have reached the gateway is refund_cancel's to say.
PAGE_ACTIONS = [
    ("retry_failed", "Retry as a new refund", lambda refund: refund.status == RefundStatus.FAILED and not retried_as(refund)),
    ("cancel_pending", "Cancel…", lambda refund: refund.status == RefundStatus.PENDING),
    ("restart_flagged", "Restart", lambda refund: refund.needs_attention),
]


class RefundStatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The refund's status history, oldest first: who moved it and why (flags and restarts too)."""

    model = RefundStatusChange
    fields = ["at", "from_status", "to_status", "source", "reason", "failure_code"]
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    verbose_name = "status change"
    verbose_name_plural = "status history"

    def has_view_permission(self, request, obj=None):
        # Part of the refund: whoever may see the refund sees how it got there.
        return request.user.has_perm("refunds.view_refund")

    @admin.display(description="at (UTC)")
    def at(self, obj: RefundStatusChange) -> str:
        return instant(obj.created_at)


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged for staff"), ("failed", "Failed, not retried")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(needs_attention=True)
        if self.value() == "failed":
            return failed_not_retried(queryset)
        return queryset


def retried_as(refund: Refund) -> str | None:
    """The id of the refund that retried this one, if any (refund_retry marks it retryOf)."""
    retries = Refund.objects.filter(payment_id=refund.payment_id, metadata__retryOf=refund.pk)
    return retries.values_list("pk", flat=True).first()


def retry_links(refund: Refund) -> str:
    """'Retry of ref_…' and 'Retried as ref_…', each a link to that refund's page; '-' when neither."""
    links = [
        (label, reverse("admin:refunds_refund_change", args=[other]), other)
        for label, other in [("Retry of", (refund.metadata or {}).get("retryOf")), ("Retried as", retried_as(refund))]
        if other
    ]
    return format_html_join("; ", '{} <a href="{}">{}</a>', links) if links else "-"


def failed_not_retried(queryset):
    """The Failed refunds that no retry has followed (refund_retry marks the new one retryOf)."""
    retries = Refund.objects.annotate(retry_of=KT("metadata__retryOf")).filter(
        payment=OuterRef("payment"), retry_of=OuterRef("pk")
    )
    return queryset.filter(status=RefundStatus.FAILED, needs_attention=False).exclude(Exists(retries))


class RefundFileFilter(admin.SimpleListFilter):
    # Reached from a bulk file's page; no list of every file in the sidebar.
    title = "bulk file"
    parameter_name = "file"

    def lookups(self, request, model_admin):
        return [(self.value(), f"file #{self.value()}")] if self.value() else []

    def queryset(self, request, queryset):
        return queryset.filter(refund_file_id=self.value()) if self.value() else queryset


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        strip=True,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text="Kept in each refund's history and shown as its failure message.",
    )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # A flagged refund is marked beside its status: one column fewer, so that the list fits a laptop.
    list_display = ["id", "payment_link", "merchant_code", "amount_display", "status_flag", "gateway", "created"]
    list_filter = [
        AttentionFilter,
        "status",
        GatewayFilter,
        "merchant",
        "source",
        ("created_at", admin.DateFieldListFilter),
        RefundFileFilter,
    ]
    list_select_related = ["merchant"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the exact count of a large table is a full scan
    list_per_page = 50
    search_fields = ["id"]  # the search box; get_search_results makes every search exact
    search_help_text = "Exact refund id, payment id, refund's gateway reference or payment reference."
    actions = ["retry_failed", "cancel_pending", "restart_flagged"]
    inlines = [RefundStatusChangeInline]
    fieldsets = [
        (
            "Refund",
            {
                "fields": [
                    "id",
                    "payment_link",
                    "merchant",
                    "amount_display",
                    "status",
                    "timestamp",
                    "reason",
                    "source",
                    "refund_file_link",
                    "failure_code",
                    "failure_message",
                    "retries",
                ]
            },
        ),
        ("Gateway", {"fields": ["gateway", "gateway_reference", "operation_state"]}),
        ("Attention", {"fields": ["attention_state"]}),
        ("Record", {"fields": ["metadata", "bulk_key", "api_key_link", "created", "updated"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("operation")

    # --- The refund's page: its actions as buttons ------------------------------------------------

    def get_urls(self):
        # Before the admin's own: its "<path:object_id>/" would take these too.
        act = path(
            "<path:object_id>/act/<str:action>/",
            self.admin_site.admin_view(require_POST(self.act_view)),
            name="refunds_refund_act",
        )
        return [act, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        refund = self.get_object(request, object_id)
        offered = self.get_actions(request)
        buttons = [
            {"name": name, "label": label, "url": reverse("admin:refunds_refund_act", args=[refund.pk, name])}
            for name, label, allowed in PAGE_ACTIONS
            if refund is not None and name in offered and allowed(refund)
        ]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "refund_actions": buttons})

    def act_view(self, request, object_id: str, action: str):
        """One of the list's actions on this refund alone, by the same method and permission; back to
        the refund's page after it (cancel answers with its confirmation page first)."""
        offered = self.get_actions(request)
        if action not in offered:
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)
        if not queryset.exists():
            raise Http404
        func, _name, _description = offered[action]
        response = func(self, request, queryset)
        return response or redirect("admin:refunds_refund_change", object_id)

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, each an index lookup: ids by their prefix, else the refund's gateway
        reference or its payment's reference (the merchant's order number)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        lowered = term.lower()
        if lowered.startswith("ref_"):
            return queryset.filter(pk=lowered), False
        if lowered.startswith("pay_"):
            return queryset.filter(payment_id=lowered), False
        by_reference = Payment.objects.filter(reference=term).values("pk")
        return queryset.filter(Q(gateway_reference=term) | Q(payment_id__in=by_reference)), False

    # --- Permissions: each action its own ---------------------------------------------------------

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("refunds.retry_refund")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("refunds.cancel_refund")

    def has_restart_permission(self, request) -> bool:
        return request.user.has_perm("refunds.restart_refund")

    def _too_many(self, request, queryset) -> bool:
        if queryset.count() > ACTION_LIMIT:
            self.message_user(request, f"Select at most {ACTION_LIMIT} refunds at a time.", messages.ERROR)
            return True
        return False

    @admin.action(description="Retry the selected Failed refunds (as new refunds)", permissions=["retry"])
    def retry_failed(self, request, queryset):
        if self._too_many(request, queryset):
            return
        user = request.user.get_username()
        for refund_id in queryset.order_by("created_at", "id").values_list("pk", flat=True):
            try:
                new = refund_retry(refund_id=refund_id, staff_user=user, actor=admin_actor(request))
            except BusinessRuleViolation as exc:
                self.message_user(request, f"Refund {refund_id} not retried: {exc.message} ({exc.code})", messages.ERROR)
                continue
            url = reverse("admin:refunds_refund_change", args=[new.pk])
            self.message_user(
                request,
                format_html(
                    'Refund {} retried as <a href="{}">{}</a> ({}); it is sent now.',
                    refund_id,
                    url,
                    new.pk,
                    format_money(new.amount, new.currency),
                ),
                messages.SUCCESS,
            )

    @admin.action(description="Cancel the selected Pending refunds not yet sent…", permissions=["cancel"])
    def cancel_pending(self, request, queryset):
        """A confirmation page with the reason first, as Django's delete confirmation; its form posts
        back to this action with `post`, and only then are the refunds cancelled."""
        if self._too_many(request, queryset):
            return None
        form = CancelForm(request.POST if request.POST.get("post") else None)
        if form.is_bound and form.is_valid():
            self._cancel(request, queryset, form.cleaned_data["reason"])
            return None
        refunds = list(queryset.select_related("merchant").order_by("created_at", "id"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel refunds",
            "subtitle": "Only a Pending refund that never reached its gateway can be cancelled",
            "opts": self.opts,
            "form": form,
            "refunds": [
                {"refund": r, "amount": format_money(r.amount, r.currency), "created": instant(r.created_at)}
                for r in refunds
            ],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/refunds/refund/cancel_confirmation.html", context)

    def _cancel(self, request, queryset, reason: str) -> None:
        user, cancelled = request.user.get_username(), 0
        for refund_id in queryset.order_by("created_at", "id").values_list("pk", flat=True):
            try:
                refund_cancel(refund_id=refund_id, staff_user=user, reason=reason, actor=admin_actor(request))
            except BusinessRuleViolation as exc:
                self.message_user(request, f"Refund {refund_id} not cancelled: {exc.message} ({exc.code})", messages.ERROR)
                continue
            cancelled += 1
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} refund{pluralize(cancelled)}: {reason}", messages.SUCCESS)

    @admin.action(description="Restart the selected flagged refunds", permissions=["restart"])
    def restart_flagged(self, request, queryset):
        if self._too_many(request, queryset):
            return
        user = request.user.get_username()
        restarted = [
            refund_id
            for refund_id in queryset.filter(needs_attention=True, status=RefundStatus.PENDING).values_list("pk", flat=True)
            if refund_restart(refund_id=refund_id, staff_user=user, actor=admin_actor(request)) is not None
        ]
        self.message_user(
            request,
            f"Restarted {len(restarted)} refund{pluralize(len(restarted))}; the next run of the batch job sends the Pending ones again."
            if restarted
            else "None of the selected refunds was a flagged Pending refund (a final one stays flagged until it is "
            "settled against the gateway's report).",
            messages.SUCCESS if restarted else messages.WARNING,
        )

    # --- Columns and fields -----------------------------------------------------------------------

    @admin.display(description="payment", ordering="payment_id")
    def payment_link(self, obj: Refund) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:payments_payment_change", args=[obj.payment_id]), obj.payment_id
        )

    @admin.display(description="merchant", ordering="merchant__code")
    def merchant_code(self, obj: Refund) -> str:
        return obj.merchant.code

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="status", ordering="status")
    def status_flag(self, obj: Refund) -> str:
        if not obj.needs_attention:
            return obj.get_status_display()
        return format_html(
            '{} <span class="pgi-flag" title="{}">Flagged</span>', obj.get_status_display(), obj.attention_reason
        )

    @admin.display(description="staff attention")
    def attention_state(self, obj: Refund) -> str:
        if not obj.needs_attention:
            return "-"
        if obj.status != RefundStatus.PENDING:
            return format_html(
                '<span class="pgi-flag">Flagged</span> Staff must look: {}. Its amount stays held (not refundable '
                "again, not retryable) until it is settled against the gateway's report.",
                obj.attention_reason,
            )
        return format_html(
            '<span class="pgi-flag">Flagged</span> Staff must look: {}. Only the gateway knows whether it refunded: '
            "check there, then restart it (the next run asks again).",
            obj.attention_reason,
        )

    @admin.display(description="gateway operation")
    def operation_state(self, obj: Refund) -> str:
        op = obj.operation
        parts = [
            f"{op.kind} {op.idempotency_key}: {op.get_status_display()}",
            f"tries without an answer: {op.attempts}",
        ]
        if op.in_flight:
            parts.append(f"next look: {instant(op.next_look_at)}" if op.next_look_at else "no next look (staff must)")
            if op.lease_expires_at and op.lease_expires_at > timezone.now():
                parts.append(f"being sent, held until {instant(op.lease_expires_at)}")
        else:
            parts.append(f"finished {instant(op.finished_at)}")
        return "; ".join(parts)

    @admin.display(description="bulk file")
    def refund_file_link(self, obj: Refund) -> str:
        if obj.refund_file_id is None:
            return "-"
        url = reverse("admin:refunds_refundfile_change", args=[obj.refund_file_id])
        return format_html('<a href="{}">file #{}</a>', url, obj.refund_file_id)

    @admin.display(description="retry")
    def retries(self, obj: Refund) -> str:
        return retry_links(obj)

    @admin.display(description="API key")
    def api_key_link(self, obj: Refund) -> str:
        if obj.api_key_id is None:
            return "-"
        url = reverse("admin:merchants_apikey_change", args=[obj.api_key_id])
        return format_html('<a href="{}">{}</a>', url, obj.api_key)

    @admin.display(description="timestamp (reached this status, UTC)", ordering="status_changed_at")
    def timestamp(self, obj: Refund) -> str:
        return instant(obj.status_changed_at)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Refund) -> str:
        return instant(obj.created_at)

    @admin.display(description="updated (UTC)", ordering="updated_at")
    def updated(self, obj: Refund) -> str:
        return instant(obj.updated_at)


class PaymentRefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The payment's refunds, oldest first; each links to its own page. Its summary line (the id
    again) is hidden by admin.css, as the payment's other inlines'."""

    model = Refund
    fk_name = "payment"
    fields = ["refund_link", "amount_display", "status", "reason", "source", "retries", "created"]
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    verbose_name = "refund"
    verbose_name_plural = "refunds"

    @admin.display(description="refund")
    def refund_link(self, obj: Refund) -> str:
        url = reverse("admin:refunds_refund_change", args=[obj.pk])
        flag = format_html(' <span class="pgi-flag">Flagged</span>') if obj.needs_attention else ""
        return format_html('<a href="{}">{}</a>{}', url, obj.pk, flag)

    @admin.display(description="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="retry")
    def retries(self, obj: Refund) -> str:
        return retry_links(obj)

    @admin.display(description="created (UTC)")
    def created(self, obj: Refund) -> str:
        return instant(obj.created_at)


# payments imports no refunds: refunds puts its list on the payment's page itself.
payment_inline_add(PaymentRefundInline)


from . import admin_files  # noqa: E402,F401  (registers the bulk files' admin)
