"""The outbox, read-only, for engineers: what was published, what waits, and why it waits.

Not named in any section of pgi/admin_site.py, so it is listed under Engineering (superusers only).
"""

from django.contrib import admin

from pgi.admin_readonly import ReadOnlyAdminMixin

from .models import OutboxEvent


class SentFilter(admin.SimpleListFilter):
    title = "sent"
    parameter_name = "sent"

    def lookups(self, request, model_admin):
        return [("yes", "Sent"), ("no", "Not sent yet")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(sent_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(sent_at__isnull=True)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "event_type", "topic", "key", "event_id", "created_at", "sent_at", "attempts", "last_error"]
    list_filter = [SentFilter, "event_type", "topic"]
    search_fields = ["=key"]
    search_help_text = "The exact payment id (the message key)."
    show_full_result_count = False
    ordering = ["-id"]
    fields = ["event_id", "topic", "key", "event_type", "body", "created_at", "sent_at", "attempts", "last_error"]
