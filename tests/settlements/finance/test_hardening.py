"""The finance UI refuses what it cannot take well: uploads too large or empty over a real report,
resolving ids that exist not, bad export filters and pages, and names what it serves safely."""

import io

import pytest
from django.urls import reverse

from settlements.reconciliation.models import (
    Category,
    GatewayReport,
    ReconciliationException,
    ReconciliationRun,
    Resolution,
)
from tests.settlements.test_reconciliation import DAY, HEADER

from .test_reconciliation_pages import run, run_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_resolving_unknown_ids_reports_them_as_not_found(finance, run):  # noqa: F811
    missing = list(ReconciliationException.objects.filter(category=Category.MISSING_AT_GATEWAY).values_list("pk", flat=True))

    finance.post(
        reverse("finance:exceptions-resolve"),
        {"exception": [*missing, 99999], "resolution": Resolution.ACCEPTED, "note": "checked", "next": run_url(run)},
    )

    page = finance.get(run_url(run)).content.decode()
    assert "Resolved 2 exceptions as accepted (not found: 99999)." in page
    assert "already resolved" not in page


def upload(finance, content: bytes, name="report.csv", **extra):
    file = io.BytesIO(content)
    file.name = name
    return finance.post(
        reverse("finance:report-upload"), {"gateway": "simulator", "day": DAY.isoformat(), "file": file, **extra}
    )


def test_an_upload_over_the_cap_is_refused_at_the_form_before_it_is_read(finance, settings, monkeypatch):
    settings.PGI_RECONCILIATION = {**settings.PGI_RECONCILIATION, "upload_max_bytes": 1000}
    from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile

    def never(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(InMemoryUploadedFile, "read", never)
    monkeypatch.setattr(TemporaryUploadedFile, "read", never)

    response = upload(finance, (HEADER * 100).encode())

    assert response.status_code == 400
    [error] = response.context["form"].errors["file"]
    assert "at most 1,000 bytes" in error and "inbox folder" in error and "manage.py reconcile --file" in error
    assert not GatewayReport.objects.exists() and not ReconciliationRun.objects.exists()


def test_the_default_cap_is_20_mb_and_django_keeps_large_uploads_out_of_memory(finance, settings):
    assert settings.PGI_RECONCILIATION["upload_max_bytes"] == 20 * 1024 * 1024
    assert "at most 20 MB" in finance.get(reverse("finance:report-upload")).content.decode()
    # Bodies above this go to a temporary file, never held in memory whole.
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 2.5 * 1024 * 1024


def test_a_header_only_upload_does_not_replace_a_report_with_lines_unless_confirmed(finance, run):  # noqa: F811
    before = run.report
    assert before.line_count > 0

    response = upload(finance, HEADER.encode(), name="empty.csv")

    assert response.status_code == 400
    [error] = response.context["form"].errors["file"]
    assert "no line after its header" in error and f"has {before.line_count:,}" in error
    assert "Replace with an empty report" in error
    run.refresh_from_db()
    assert run.report_id == before.pk and GatewayReport.objects.count() == 1

    response = upload(finance, HEADER.encode(), name="empty.csv", replace_with_empty="on")

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.report.line_count == 0 and run.report_id != before.pk


def test_a_header_only_upload_for_a_day_without_a_report_is_taken(finance):
    assert upload(finance, HEADER.encode(), name="empty.csv").status_code == 302
    assert ReconciliationRun.objects.get().report.line_count == 0


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("finance:runs-export", {"day_from": "2026-12-05", "day_to": "2026-12-01"}, "day_to"),
        ("finance:batches-export", {"currency": "XXX"}, "currency"),
        ("finance:exceptions-export", {"amount_min": "ten"}, "amount_min"),
    ],
)
def test_a_bad_export_filter_is_the_same_plain_400_naming_the_field(finance, url, params, field):
    response = finance.get(reverse(url), params)

    assert response.status_code == 400 and response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("Invalid filters.\n") and f"\n{field}: " in text and "<html" not in text


@pytest.mark.parametrize(("value", "shown"), [("-1", 1), ("0", 1), ("abc", 1), ("", 1), ("2", 2), ("99", 3)])
def test_a_page_below_1_or_not_a_number_is_the_first_and_one_past_the_end_the_last(finance, run, value, shown, monkeypatch):  # noqa: F811
    from settlements.finance.views import reconciliation as views

    monkeypatch.setattr(views, "EXCEPTIONS_PER_PAGE", 3)  # the run's 8 open exceptions on 3 pages

    response = finance.get(run_url(run, page=value))

    assert response.status_code == 200 and response.context["page"].number == shown


def test_payments_without_a_route_are_shown_under_no_route(finance, today):
    from payments.models import PaymentStatus

    from .conftest import payment_on

    payment_on(today, gateway="", currency="USD", status=PaymentStatus.FAILED)

    html = finance.get(reverse("finance:dashboard")).content.decode()

    assert "(none)" not in html
    assert '<th scope="row">no route</th>' in html
    export = finance.get(reverse("finance:dashboard-export", args=["payments-today"]))
    assert '"no route"' in b"".join(export.streaming_content).decode()


def test_a_report_is_downloaded_under_a_safe_name_whatever_it_was_uploaded_as(finance, merchant, admin_client):
    from tests.settlements.test_reconciliation import crafted_day

    crafted = crafted_day(merchant)
    assert upload(finance, crafted["report"], name='x.html"; evil').status_code == 302
    report = GatewayReport.objects.get()

    for client, url in (
        (finance, reverse("finance:report", args=[report.pk])),
        (admin_client, reverse("admin:settlements_gatewayreport_file", args=[report.pk])),
    ):
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == f'attachment; filename="simulator_{DAY.isoformat()}_{report.pk}.csv"'
        assert response.content == crafted["report"]


def test_an_unknown_to_pgi_exception_shows_the_payment_id_the_report_gives(finance, run):  # noqa: F811
    from .test_exports import rows_of

    html = finance.get(run_url(run, category="unknown_to_pgi")).content.decode()
    assert '<span class="helptext report-ref">payment pay_unknown</span>' in html

    rows = rows_of(finance.get(reverse("finance:run-exceptions-export", args=[run.pk]), {"category": "unknown_to_pgi"}))
    header = rows[0]
    [line] = [row for row in rows[1:] if row[header.index("reference")] == "payment:sim_unknown"]
    assert line[header.index("report_payment_id")] == "pay_unknown"
