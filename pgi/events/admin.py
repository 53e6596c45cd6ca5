"""The outbox, read-only, for engineers: what was published, what waits, and why it waits.

Not named in any section of pgi/admin_site.py, so it is listed under Engineering (superusers only).
The relay's lag (what waits, and for how long) heads the outbox list and is a panel of the index
for anyone who may view the outbox; it turns red past PGI_EVENTS["lag_warn_seconds"].
"""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.admin_site import Panel

from .models import OutboxEvent
from .selectors import outbox_oldest_unsent, relay_lag


def duration_text(seconds: float) -> str:
    """An age as people read it: 42 s, 3 min 05 s, 2 h 07 min, 3 d 4 h."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def relay_lag_context(request: HttpRequest | None = None) -> dict:
    """The same numbers as /health's `outboxRelay`, plus the oldest waiting row and whether it is late."""
    unsent, oldest_seconds = relay_lag()
    oldest = outbox_oldest_unsent() if unsent else None
    warn_after = float(settings.PGI_EVENTS.get("lag_warn_seconds", 60))
    changelist = reverse("admin:events_outboxevent_changelist")
    return {
        "unsent": unsent,
        "oldest_seconds": round(oldest_seconds, 1),
        "oldest_age": duration_text(oldest_seconds),
        "late": unsent > 0 and oldest_seconds > warn_after,
        "warn_after": duration_text(warn_after),
        "oldest": oldest,
        "oldest_created": instant(oldest.created_at) if oldest else "",
        "oldest_url": reverse("admin:events_outboxevent_change", args=[oldest.pk]) if oldest else "",
        "unsent_url": f"{changelist}?sent=no",
    }


def outbox_viewer(request: HttpRequest) -> bool:
    return request.user.has_perm("events.view_outboxevent")


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

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"relay_lag": relay_lag_context(request), **(extra_context or {})})


admin.site.register_panel(Panel(template="admin/events/relay_lag_panel.html", context=relay_lag_context, visible=outbox_viewer))
