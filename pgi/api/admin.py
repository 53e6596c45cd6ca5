"""Stored Idempotency-Key responses, read-only: what a replay of a POST would return.

Rows expire after PGI_IDEMPOTENCY_TTL_HOURS and are removed by the purge job
(pgi.api.tasks.idempotency_keys_purge on the beat schedule). An unanswered row is a request in
progress, holding its lease, or one that crashed: its lease has lapsed, and retries answer from the
linked object (a payment) or, with nothing linked, run again.
"""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from pgi.admin_readonly import ReadOnlyAdminMixin

from .models import IdempotencyRecord


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expired"

    def lookups(self, request, model_admin):
        return [("no", "Live"), ("yes", "Expired (awaiting purge)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(expires_at__lte=timezone.now())
        if self.value() == "no":
            return queryset.filter(expires_at__gt=timezone.now())
        return queryset


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("answered", "Answered"), ("running", "In progress"), ("lapsed", "Lapsed (request crashed)")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "answered":
            return queryset.filter(response_status__isnull=False)
        if self.value() == "running":
            return queryset.filter(response_status__isnull=True, lease_expires_at__gt=now)
        if self.value() == "lapsed":
            return queryset.filter(response_status__isnull=True, lease_expires_at__lte=now)
        return queryset


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "key",
        "scope",
        "method",
        "path",
        "response_status",
        "state",
        "linked_object",
        "created_at",
        "expires_at",
    ]
    list_filter = ["method", StateFilter, ExpiryFilter]
    list_select_related = ["linked_type"]
    search_fields = ["key"]
    search_help_text = "The exact Idempotency-Key the client sent."
    show_full_result_count = False
    fields = [
        "scope",
        "key",
        "method",
        "path",
        "request_hash",
        "state",
        "lease_expires_at",
        "linked_object",
        "response_status",
        "response_body",
        "created_at",
        "expires_at",
    ]

    def get_search_results(self, request, queryset, search_term):
        # Keys are case-sensitive opaque strings: match exactly.
        term = search_term.strip()
        return (queryset.filter(key=term) if term else queryset), False

    @admin.display(description="state")
    def state(self, record: IdempotencyRecord) -> str:
        if record.response_status is not None:
            return "answered"
        if record.lapsed():
            return "lapsed: answers from the linked object" if record.linked_id else "lapsed: a retry runs again"
        return "in progress"

    @admin.display(description="linked")
    def linked_object(self, record: IdempotencyRecord) -> str:
        """What the request created or acted on (a payment), linked to its own admin page."""
        if not record.linked_id:
            return "—"
        model = record.linked_type
        try:
            url = reverse(f"admin:{model.app_label}_{model.model}_change", args=[record.linked_id])
        except NoReverseMatch:
            return f"{model.model} {record.linked_id}"
        return format_html('<a href="{}">{} {}</a>', url, model.model, record.linked_id)
