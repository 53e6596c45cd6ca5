"""Payment requests, read-only, for engineers: which payment a bank system's request id created."""

from django.contrib import admin

from pgi.admin_readonly import ReadOnlyAdminMixin

from .models import PaymentRequest


@admin.register(PaymentRequest)
class PaymentRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["request_id", "payment", "topic", "partition", "offset", "created_at"]
    search_fields = ["=request_id", "=payment__id"]
    search_help_text = "The exact request id or payment id."
    list_select_related = ["payment"]
    show_full_result_count = False
    fields = ["request_id", "payment", "fingerprint", "topic", "partition", "offset", "created_at"]
