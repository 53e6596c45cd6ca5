"""The audit trail in the admin: read-only for everyone, superusers included; filtered by actor,
action, object type and date, searched, and exported as CSV (the filtered list, or the selected
events) by whoever holds audit.export_auditevent."""

import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from pgi.admin_format import instant
from pgi.admin_masking import accounts_masked, may_see_full_accounts

from .exports import audit_csv_response
from .models import AuditEvent


class _ExportChangeList(ChangeList):
    def get_results(self, request):
        pass  # the export streams every filtered row itself: no page, no count


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_username", "via", "source_ip", "action", "object_type", "object_id", "object_repr"]
    list_filter = [
        ("created_at", admin.DateFieldListFilter),
        "action",
        "object_type",
        "via",
        "actor_username",
    ]
    date_hierarchy = "created_at"
    search_fields = ["actor_username", "=object_id", "object_repr", "note"]
    search_help_text = "User name, exact object id, the object's name, or words of the note."
    show_full_result_count = False
    list_per_page = 100
    actions = ["export_selected"]
    fields = ["at", "actor_username", "actor_id", "via", "source_ip", "action", "object_type", "object_id",
              "object_repr", "note", "before_json", "after_json"]  # fmt: skip
    readonly_fields = fields

    def get_fields(self, request, obj=None):
        # Account identifiers in before and after are whole only for staff who may see them whole.
        if may_see_full_accounts(request.user):
            return self.fields
        masked = {"before_json": "before_masked", "after_json": "after_masked"}
        return [masked.get(name, name) for name in self.fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("audit.export_auditevent")

    @admin.display(description="at (UTC)", ordering="created_at")
    def at(self, obj: AuditEvent) -> str:
        return instant(obj.created_at)

    @admin.display(description="before")
    def before_json(self, obj: AuditEvent) -> str:
        return _json_block(obj.before)

    @admin.display(description="after")
    def after_json(self, obj: AuditEvent) -> str:
        return _json_block(obj.after)

    @admin.display(description="before")
    def before_masked(self, obj: AuditEvent) -> str:
        return _json_block(accounts_masked(obj.before))

    @admin.display(description="after")
    def after_masked(self, obj: AuditEvent) -> str:
        return _json_block(accounts_masked(obj.after))

    # --- Export ------------------------------------------------------------------------------------

    @admin.action(description="Export the selected events (CSV)", permissions=["export"])
    def export_selected(self, request, queryset):
        return audit_csv_response(queryset, mask_accounts=not may_see_full_accounts(request.user))

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_view), name="audit_auditevent_export")
        return [export, *super().get_urls()]

    def get_changelist(self, request, **kwargs):
        return _ExportChangeList if getattr(request, "_pgi_export", False) else super().get_changelist(request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        extra = {"export_url": self._export_url(request) if self.has_export_permission(request) else ""}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def export_view(self, request):
        """Every event the list shows with the same filters and search, oldest first."""
        if not (self.has_view_permission(request) and self.has_export_permission(request)):
            raise PermissionDenied
        request._pgi_export = True
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:audit_auditevent_changelist") + "?e=1")
        return audit_csv_response(cl.queryset, mask_accounts=not may_see_full_accounts(request.user))

    @staticmethod
    def _export_url(request) -> str:
        query = request.GET.copy()
        query.pop("p", None)
        url = reverse("admin:audit_auditevent_export")
        return f"{url}?{query.urlencode()}" if query else url


def _json_block(value) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, cls=DjangoJSONEncoder, indent=2, sort_keys=True, ensure_ascii=False))
