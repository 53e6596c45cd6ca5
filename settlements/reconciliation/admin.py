"""Staff admin for reconciliation: reports (the file as received, for download), runs with their
totals, and exceptions, read-only except an exception's resolution and note (through
reconciliation_exceptions_resolve, which records who and when). Finance works them in the finance UI."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from pgi.admin_format import instant
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor
from pgi.errors import ApplicationError

from ..downloads import gateway_report_response
from .models import (
    GatewayReport,
    ReconciliationException,
    ReconciliationRun,
    ReconciliationTotal,
    Resolution,
)
from .selectors import overdue_before
from .services import reconciliation_exceptions_resolve


@admin.register(GatewayReport)
class GatewayReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "gateway", "day", "format", "source", "line_count", "size", "created_display"]
    list_filter = ["gateway", "format", "source", ("day", admin.DateFieldListFilter)]
    search_fields = ["=sha256", "name"]
    show_full_result_count = False
    fields = ["gateway", "day", "name", "format", "source", "line_count", "size", "sha256", "uploaded_by",
              "created_display", "download"]  # fmt: skip

    @admin.display(description="received", ordering="created_at")
    def created_display(self, obj):
        return instant(obj.created_at)

    @admin.display(description="file")
    def download(self, obj):
        url = reverse("admin:settlements_gatewayreport_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.name)

    def get_urls(self):
        view = path("<int:object_id>/file/", self.admin_site.admin_view(self.file_view),
                    name="settlements_gatewayreport_file")  # fmt: skip
        return [view, *super().get_urls()]

    def file_view(self, request, object_id: int):
        """The report as received, byte for byte."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = GatewayReport.objects.filter(pk=object_id).first()
        if report is None:
            raise Http404("No such report.")
        return gateway_report_response(report)


class TotalInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReconciliationTotal
    fields = ["category", "currency", "count", "report_amount", "pgi_amount", "report_fee", "pgi_fee",
              "fee_differences", "webhook_amount"]  # fmt: skip
    extra = 0

    def has_view_permission(self, request, obj=None):
        return True  # shown on the run's page to whoever may see the run


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "status", "line_count", "operation_count", "matched_count", "exception_count",
                    "run_count", "finished_display"]  # fmt: skip
    list_filter = ["gateway", "status", ("day", admin.DateFieldListFilter)]
    list_select_related = ["report"]
    show_full_result_count = False
    inlines = [TotalInline]
    fields = ["gateway", "day", "report_link", "status", "error", "trigger", "triggered_by", "run_count", "line_count",
              "operation_count", "matched_count", "exception_count", "started_at", "finished_at", "exceptions_link"]  # fmt: skip

    def get_queryset(self, request):
        # The report's name, never its file (megabytes).
        return super().get_queryset(request).defer("report__content")

    @admin.display(description="report")
    def report_link(self, obj):
        if obj.report_id is None:
            return "-"
        report = GatewayReport.objects.get(pk=obj.report_id)
        url = reverse("admin:settlements_gatewayreport_change", args=[report.pk])
        return format_html('<a href="{}">{}</a>', url, report.name)

    @admin.display(description="finished", ordering="finished_at")
    def finished_display(self, obj):
        return instant(obj.finished_at)

    @admin.display(description="exceptions")
    def exceptions_link(self, obj):
        url = reverse("admin:settlements_reconciliationexception_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} exception(s)</a>', url, obj.exception_count)


class ResolveForm(forms.ModelForm):
    resolution = forms.ChoiceField(choices=[("", "---------"), *Resolution.choices])
    resolution_note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = ReconciliationException
        fields = ["resolution", "resolution_note"]


class ResolveManyForm(forms.Form):
    resolution = forms.ChoiceField(choices=[("", "---------"), *Resolution.choices])
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "overdue (open, past the configured age)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.overdue(before=overdue_before())
        return queryset


class ResolvedFilter(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("no", "open"), ("yes", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.open()
        if self.value() == "yes":
            return queryset.resolved()
        return queryset


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(admin.ModelAdmin):
    """Everything read-only but the resolution and its note, and those only while it is open."""

    form = ResolveForm
    list_display = ["reference", "gateway", "day", "category", "amount", "currency", "resolution", "present",
                    "first_seen_display"]  # fmt: skip
    list_filter = ["category", ResolvedFilter, OverdueFilter, "gateway", "currency", "present",
                   ("day", admin.DateFieldListFilter)]  # fmt: skip
    search_fields = ["=reference", "=payment__id", "=refund__id", "=gateway_reference", "=report_payment_id"]
    show_full_result_count = False
    list_select_related = ["resolved_by"]
    raw_id_fields = ["run"]
    observed = ["run", "gateway", "day", "category", "reference", "currency", "amount", "report_amount",
                "report_currency", "report_fee", "report_status", "report_kind", "report_payment_id",
                "report_refund_id", "line_no", "gateway_reference", "pgi_amount", "pgi_currency", "pgi_fee",
                "pgi_status", "payment", "refund", "detail", "present", "first_seen_at", "last_seen_at"]  # fmt: skip
    resolved_fields = ["resolution", "resolution_note", "resolved_by", "resolved_at"]
    actions = ["resolve_selected"]
    SHOWN = 100  # exceptions listed on the confirmation page

    @admin.action(description="Resolve selected…", permissions=["resolve"])
    def resolve_selected(self, request, queryset):
        """A page asking the resolution and the note first; it posts back with `post`, and then the
        open ones among the selected are resolved by reconciliation_exceptions_resolve."""
        form = ResolveManyForm(request.POST if request.POST.get("post") else None)
        if form.is_bound and form.is_valid():
            ids = list(queryset.values_list("pk", flat=True))
            try:
                outcome = reconciliation_exceptions_resolve(
                    exception_ids=ids, resolution=form.cleaned_data["resolution"], note=form.cleaned_data["note"],
                    user=request.user, actor=admin_actor(request),
                )  # fmt: skip
            except ApplicationError as exc:
                self.message_user(request, f"{exc.message} ({exc.code})", messages.ERROR)
                return None
            skipped, missing = outcome.already_resolved, outcome.not_found
            self.message_user(
                request,
                f"Resolved {outcome.resolved} exception(s)"
                + (f"; {skipped} already resolved, left as they were" if skipped else "")
                + (f"; not found: {', '.join(map(str, missing))}" if missing else "") + ".",
                messages.SUCCESS,
            )
            return None
        count = queryset.count()
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve the selected exceptions",
            "opts": self.opts,
            "form": form,
            "count": count,
            "open_count": queryset.open().count(),
            "exceptions": list(queryset.order_by("id")[: self.SHOWN]),
            "shown_minus": -self.SHOWN,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/settlements/reconciliationexception/resolve_confirmation.html", context
        )

    def get_fields(self, request, obj=None):
        return [*self.observed, *self.resolved_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and (obj.resolution or not self.has_resolve_permission(request)):
            return [*self.observed, *self.resolved_fields]
        return [*self.observed, "resolved_by", "resolved_at"]

    @admin.display(description="first seen", ordering="first_seen_at")
    def first_seen_display(self, obj):
        return instant(obj.first_seen_at)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("settlements.resolve_reconciliationexception")

    def has_change_permission(self, request, obj=None):
        return self.has_resolve_permission(request) and (obj is None or not obj.resolution)

    def save_model(self, request, obj, form, change):
        # Through the service (who and when, only while open), never the form's own save. The audit
        # trail records the change from log_change, as for any other change form.
        try:
            reconciliation_exceptions_resolve(
                exception_ids=[obj.pk], resolution=form.cleaned_data["resolution"],
                note=form.cleaned_data["resolution_note"], user=request.user,
            )  # fmt: skip
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def save_related(self, request, form, formsets, change):
        pass
