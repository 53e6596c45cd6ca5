"""Stored Idempotency-Key responses, read-only: what a replay of a POST would return.

Rows expire after PGI_IDEMPOTENCY_TTL_HOURS and are removed by the purge job
(pgi.api.tasks.idempotency_keys_purge on the beat schedule).
"""

from django.contrib import admin
from django.utils import timezone

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


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["key", "scope", "method", "path", "response_status", "created_at", "expires_at"]
    list_filter = ["method", ExpiryFilter]
    search_fields = ["key"]
    search_help_text = "The exact Idempotency-Key the client sent."
    show_full_result_count = False
    fields = [
        "scope",
        "key",
        "method",
        "path",
        "request_hash",
        "response_status",
        "response_body",
        "created_at",
        "expires_at",
    ]

    def get_search_results(self, request, queryset, search_term):
        # Keys are case-sensitive opaque strings: match exactly.
        term = search_term.strip()
        return (queryset.filter(key=term) if term else queryset), False
