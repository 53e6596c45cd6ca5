"""Bulk refund files in the admin: the upload page (in place of "add"), each file's record, its
error report and the file itself as uploaded.

The upload runs in the request: refunds.bulk takes 100,000 rows well inside the web timeout
(bench/refund_file_upload.py). Uploading needs refunds.upload_refundfile; seeing files needs
refunds.view_refundfile.
"""

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from pgi.admin_format import instant, spreadsheet_safe
from pgi.admin_readonly import ReadOnlyAdminMixin
from pgi.audit.admin_hooks import admin_actor

from .bulk import KEY_COLUMN, MAX_FILE_BYTES, REQUIRED_COLUMNS, RefundFileRefused, refund_file_upload
from .models import RefundFile

ERRORS_SHOWN = 50  # on the file's page; the report has them all
NAME_SHOWN = 60  # characters of a file's name in the list; the whole name is its title


def report_lines(refund_file: RefundFile) -> list[list[str]]:
    """The error report's lines (row, column, code, error) without its header."""
    report = RefundFile.objects.values_list("error_report", flat=True).get(pk=refund_file.pk)
    return list(csv.reader(io.StringIO(report)))[1:]


def unguarded(cell: str) -> str:
    """A report cell as the page shows it: without the quote spreadsheet_safe put before a formula."""
    return cell[1:] if cell.startswith("'") and spreadsheet_safe(cell[1:]) == cell else cell


def error_summary(refund_file: RefundFile) -> str:
    """'3 errors in 2 of its 15 rows', counting the rows that have one; or, when no row was read
    (the header, the encoding, no rows), the errors of the file as a whole with their codes."""
    n = refund_file.errors
    if not n:
        return "none"
    lines = report_lines(refund_file)
    if not refund_file.rows:
        codes = ", ".join(dict.fromkeys(line[2] for line in lines))
        return f"{n} error{pluralize(n)} in the file as a whole, no row read ({codes})"
    bad, rows = len({line[0] for line in lines}), refund_file.rows
    return f"{n} error{pluralize(n)} in {bad} of its {rows} row{pluralize(rows)}"


class RefundFileUploadForm(forms.Form):
    file = forms.FileField(
        label="Refund file (CSV)",
        help_text=f"Header {','.join(REQUIRED_COLUMNS)} and optionally {KEY_COLUMN}; UTF-8; at most "
        f"{MAX_FILE_BYTES // (1024 * 1024)} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(
                f"The file has {upload.size:,} bytes; at most {MAX_FILE_BYTES // (1024 * 1024)} MB are taken. Split it.",
                code="REFUND_FILE_TOO_LARGE",
            )
        return upload


@admin.register(RefundFile)
class RefundFileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["file_number", "short_name", "outcome", "rows", "totals", "errors", "uploaded_by", "uploaded"]
    list_filter = ["outcome"]
    list_select_related = ["uploaded_by"]
    date_hierarchy = "uploaded_at"
    list_per_page = 50
    fields = [
        "name",
        "outcome",
        "rows",
        "totals",
        "error_count",
        "uploaded_by",
        "uploaded",
        "fingerprint",
        "refunds_link",
        "downloads",
        "error_preview",
    ]

    def get_fields(self, request, obj=None):
        # An accepted file has no errors to count or show.
        if obj is not None and obj.outcome == RefundFile.Outcome.ACCEPTED:
            return [f for f in self.fields if f not in ("error_count", "error_preview")]
        return self.fields

    def get_queryset(self, request):
        # The content (up to 20 MB) and the report are read only when downloaded.
        return super().get_queryset(request).defer("content", "error_report")

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("refunds.upload_refundfile")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/report.csv", view(self.report_view), name="refunds_refundfile_report"),
            path("<int:pk>/file.csv", view(self.file_view), name="refunds_refundfile_file"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        """The upload form: the file is checked and taken (or rejected) at once; the answer is the
        file's page, with its error report when rejected."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RefundFileUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                refund_file = refund_file_upload(
                    name=upload.name, content=upload.read(), user=request.user, actor=admin_actor(request)
                )
            except RefundFileRefused as exc:
                form.add_error("file", f"{exc.message} ({exc.code})")
            else:
                self._tell(request, refund_file)
                return redirect("admin:refunds_refundfile_change", refund_file.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a refund file",
            "opts": self.opts,
            "form": form,
            "max_mb": MAX_FILE_BYTES // (1024 * 1024),
            "has_view_permission": self.has_view_permission(request),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/refunds/refundfile/upload.html", context)

    def _tell(self, request, refund_file: RefundFile) -> None:
        rows = refund_file.rows
        if refund_file.outcome == RefundFile.Outcome.ACCEPTED:
            self.message_user(
                request,
                f"Accepted {refund_file.name}: {rows} refund{pluralize(rows)}, {self.totals(refund_file)}. "
                f"{'They are' if rows > 1 else 'It is'} Pending; the batch job sends "
                f"{'them' if rows > 1 else 'it'}, starting within a minute.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"Rejected {refund_file.name}: {error_summary(refund_file)}; no refund was made. "
                "Correct the file (the report lists every error) and upload the whole file again.",
                messages.ERROR,
            )

    def _file_or_404(self, request, pk: int) -> RefundFile:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(RefundFile, pk=pk)

    def report_view(self, request, pk: int):
        refund_file = self._file_or_404(request, pk)
        # Written with spreadsheet_safe cells (refunds.bulk.error_report): served as stored.
        response = HttpResponse(refund_file.error_report, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="refund-file-{pk}-errors.csv"'
        return response

    def file_view(self, request, pk: int):
        refund_file = self._file_or_404(request, pk)
        response = HttpResponse(bytes(refund_file.content), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="refund-file-{pk}.csv"'
        return response

    # --- Columns and fields -----------------------------------------------------------------------

    @admin.display(description="file", ordering="id")
    def file_number(self, obj: RefundFile) -> str:
        return f"#{obj.pk}"

    @admin.display(description="name", ordering="name")
    def short_name(self, obj: RefundFile) -> str:
        if len(obj.name) <= NAME_SHOWN:
            return obj.name
        return format_html('<span title="{}">{}…</span>', obj.name, obj.name[: NAME_SHOWN - 1])

    @admin.display(description="SHA-256 of its rows (of its bytes when no row could be read)")
    def fingerprint(self, obj: RefundFile) -> str:
        return obj.sha256

    @admin.display(description="errors")
    def error_count(self, obj: RefundFile) -> str:
        return error_summary(obj)

    @admin.display(description="totals")
    def totals(self, obj: RefundFile) -> str:
        return ", ".join(f"{total} {code}" for code, total in obj.total_by_currency.items()) or "-"

    @admin.display(description="uploaded (UTC)", ordering="uploaded_at")
    def uploaded(self, obj: RefundFile) -> str:
        return instant(obj.uploaded_at)

    @admin.display(description="refunds")
    def refunds_link(self, obj: RefundFile) -> str:
        if obj.outcome != RefundFile.Outcome.ACCEPTED:
            return "none: the file was rejected"
        url = reverse("admin:refunds_refund_changelist") + f"?file={obj.pk}"
        return format_html('<a href="{}">the {} refund{} of this file</a>', url, obj.rows, pluralize(obj.rows))

    @admin.display(description="downloads")
    def downloads(self, obj: RefundFile) -> str:
        links = [(reverse("admin:refunds_refundfile_file", args=[obj.pk]), "the file as uploaded", "download-file")]
        if obj.errors:
            links.insert(
                0,
                (
                    reverse("admin:refunds_refundfile_report", args=[obj.pk]),
                    "the error report (CSV)",
                    "download-report",
                ),
            )
        return format_html_join(
            " · ", '<a href="{}" id="{}">{}</a>', ((url, anchor, text) for url, text, anchor in links)
        )

    @admin.display(description="errors (first 50; every one is in the report)")
    def error_preview(self, obj: RefundFile) -> str:
        if not obj.errors:
            return "-"
        lines = [[unguarded(cell) for cell in line] for line in report_lines(obj)[:ERRORS_SHOWN]]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", lines)
        return format_html(
            '<table class="pgi-file-errors" id="file-errors"><thead><tr><th>Row</th><th>Column</th><th>Code</th>'
            "<th>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )
