"""Reconciliation in the finance UI: runs with their category totals, a run's exceptions with
filters and search, resolving one or many (who and when recorded by the service), report upload,
overdue highlighted, the dashboard's panels, all in fixed query counts."""

import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from settlements.reconciliation.models import (
    Category,
    ReconciliationException,
    ReconciliationRun,
    Resolution,
)
from settlements.reconciliation.services import reconciliation_report_upload
from tests.settlements.test_reconciliation import DAY, crafted_day

from .test_exports import rows_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(merchant, finance_user) -> ReconciliationRun:
    """The crafted day of the reconciliation tests: one exception of every category, 8 open."""
    day = crafted_day(merchant)
    return reconciliation_report_upload(
        gateway="simulator", day=DAY, name="simulator_2026-11-30.csv", content=day["report"], user=finance_user
    ).run


def run_url(run, **params) -> str:
    return reverse("finance:run", args=[run.pk]) + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def listed(response) -> list[ReconciliationException]:
    return list(response.context["page"].object_list)


def test_runs_list_their_count_per_category(finance, run):
    response = finance.get(reverse("finance:runs"))

    [(listed_run, counts)] = response.context["rows"]
    assert listed_run.pk == run.pk and listed_run.open_exceptions == 8
    assert counts[Category.MATCHED] == 3 and counts[Category.DUPLICATE] == 1
    assert counts[Category.MISSING_AT_GATEWAY] == 2 and counts[Category.UNKNOWN_TO_PGI] == 2


def test_a_run_shows_its_totals_and_its_open_exceptions(finance, run):
    response = finance.get(run_url(run))

    assert response.status_code == 200
    assert len(listed(response)) == 8
    totals = {(t["currency"], t["category"]): t for t in response.context["totals"]}
    assert totals[("USD", Category.AMOUNT_MISMATCH)]["difference"] == -1  # reported 19.00 for our 20.00
    assert b'id="kpi-open">8<' in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "duplicate"}, {Category.DUPLICATE}),
        ({"currency": "eur"}, {Category.CURRENCY_MISMATCH}),
        ({"amount_min": "39", "amount_max": "41"}, {Category.MISSING_AT_GATEWAY}),
        ({"q": "sim_unknown"}, {Category.UNKNOWN_TO_PGI}),
        ({"gateway": "stripe"}, set()),
    ],
)
def test_exceptions_filter_and_search(finance, run, params, expected):
    assert {e.category for e in listed(finance.get(run_url(run, **params)))} == expected


def test_a_bad_filter_is_a_form_error(finance, run):
    response = finance.get(run_url(run, amount_min="ten"))
    assert response.status_code == 400 and "amount_min" in response.context["form"].errors
    response = finance.get(run_url(run, amount_min="5", amount_max="1"))
    assert response.status_code == 400 and "amount_max" in response.context["form"].errors


def test_resolving_several_at_once_records_who_and_when_and_hides_them_from_open(finance, finance_user, run):
    missing = list(ReconciliationException.objects.filter(category=Category.MISSING_AT_GATEWAY).values_list("pk", flat=True))
    back = run_url(run)

    response = finance.post(
        reverse("finance:exceptions-resolve"),
        {"exception": missing, "resolution": Resolution.ACCEPTED, "note": "in tomorrow's report", "next": back},
    )

    assert response.status_code == 302 and response["Location"] == back
    for exc in ReconciliationException.objects.filter(pk__in=missing):
        assert (exc.resolution, exc.resolution_note, exc.resolved_by) == (Resolution.ACCEPTED, "in tomorrow's report", finance_user)
        assert timezone.now() - exc.resolved_at < dt.timedelta(minutes=1)
    page = finance.get(back)
    assert len(listed(page)) == 6
    assert "Resolved 2 exceptions as accepted." in page.content.decode()
    assert len(listed(finance.get(run_url(run, status="resolved")))) == 2


def test_resolving_without_a_note_or_a_tick_changes_nothing(finance, run):
    one = ReconciliationException.objects.filter(category=Category.DUPLICATE).first()
    for data in (
        {"exception": [one.pk], "resolution": Resolution.ACCEPTED, "note": " "},
        {"exception": [one.pk], "resolution": "forgotten", "note": "x"},
        {"resolution": Resolution.ACCEPTED, "note": "nothing ticked"},
    ):
        finance.post(reverse("finance:exceptions-resolve"), {**data, "next": run_url(run)})
    one.refresh_from_db()
    assert one.resolution == "" and one.resolved_at is None


def test_resolving_needs_the_permission(client, django_user_model, run):
    from settlements.finance.services import finance_group_ensure

    reader = django_user_model.objects.create_user("reader", password="pw")
    reader.user_permissions.set(finance_group_ensure().permissions.exclude(codename="resolve_reconciliationexception"))
    client.force_login(reader)
    one = ReconciliationException.objects.first()

    assert b'name="exception"' not in client.get(run_url(run)).content
    response = client.post(reverse("finance:exceptions-resolve"), {"exception": [one.pk], "resolution": "accepted", "note": "x"})
    assert response.status_code == 403
    one.refresh_from_db()
    assert one.resolution == ""


def test_a_resolve_form_never_sends_the_user_off_site(finance, run):
    one = ReconciliationException.objects.first()
    response = finance.post(
        reverse("finance:exceptions-resolve"),
        {"exception": [one.pk], "resolution": "escalated", "note": "to the gateway", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("finance:exceptions")


def test_overdue_exceptions_are_marked(finance, run, settings):
    ReconciliationException.objects.filter(category=Category.DUPLICATE).update(
        first_seen_at=timezone.now() - dt.timedelta(days=settings.PGI_RECONCILIATION["overdue_days"] + 1)
    )
    html = finance.get(run_url(run)).content.decode()
    assert html.count('class="overdue"') == 1 and '<span class="badge overdue">overdue</span>' in html
    assert {e.category for e in listed(finance.get(run_url(run, overdue="on")))} == {Category.DUPLICATE}


def test_all_exceptions_across_runs(finance, run):
    response = finance.get(reverse("finance:exceptions"), {"gateway": "simulator"})
    assert response.status_code == 200 and len(listed(response)) == 8


def test_a_run_page_is_a_fixed_number_of_queries(finance, run, django_assert_num_queries):
    # session, user, two permission reads; the run (with its open count: the page's total), its
    # totals, the page of exceptions (their resolvers joined)
    with django_assert_num_queries(7):
        response = finance.get(run_url(run))
    assert response.context["page"].paginator.count == 8
    # with a filter, the exceptions are counted too
    with django_assert_num_queries(8):
        assert finance.get(run_url(run, category="duplicate")).context["page"].paginator.count == 1
    ReconciliationException.objects.update(resolution="accepted", resolved_at=timezone.now())
    with django_assert_num_queries(8):
        finance.get(run_url(run, status="all"))


def test_exceptions_export_every_filtered_row_with_exact_amounts(finance, run):
    header, *rows = rows_of(finance.get(reverse("finance:run-exceptions-export", args=[run.pk]), {"status": "all"}))

    assert len(rows) == 8 and header[:4] == ["id", "day", "gateway", "category"]
    by_category = {row[3]: row for row in rows}
    assert by_category["amount_mismatch"][7] == "19.00" and by_category["amount_mismatch"][9] == "20.00"


def test_runs_export(finance, run):
    header, row = rows_of(finance.get(reverse("finance:runs-export")))
    assert row[2] == "simulator" and row[header.index("duplicate")] == "1" and row[header.index("open")] == "8"


def test_uploading_a_report_reconciles_its_day(finance, merchant):
    day = crafted_day(merchant)
    upload = io.BytesIO(day["report"])
    upload.name = "simulator_2026-11-30.csv"

    response = finance.post(reverse("finance:report-upload"), {"gateway": "simulator", "day": DAY.isoformat(), "file": upload})

    run = ReconciliationRun.objects.get(gateway="simulator", day=DAY)
    assert response.status_code == 302 and response["Location"] == reverse("finance:run", args=[run.pk])
    assert run.report.uploaded_by.username == "fiona" and run.exception_count == 8


def test_an_unreadable_report_is_a_form_error_and_changes_nothing(finance):
    upload = io.BytesIO(b"this is not a report\n")
    upload.name = "notes.txt"
    response = finance.post(reverse("finance:report-upload"), {"gateway": "simulator", "day": DAY.isoformat(), "file": upload})

    assert response.status_code == 400 and response.context["form"].errors["file"]
    assert not ReconciliationRun.objects.exists()


def test_the_dashboard_shows_reconciliation_per_gateway_and_day_and_open_exceptions_by_age(
    finance, run, django_assert_num_queries
):
    ReconciliationRun.objects.filter(pk=run.pk).update(day=timezone.now().date() - dt.timedelta(days=1))
    finance.get(reverse("finance:dashboard"))
    # the payments' and settlement's nine, and the runs (whether each has open or overdue
    # exceptions), the open exceptions by age
    with django_assert_num_queries(11):
        response = finance.get(reverse("finance:dashboard"))

    [row] = [r for r in response.context["recon_grid"] if r["gateway"] == "simulator"]
    assert row["cells"][-2]["state"] == "exceptions" and row["cells"][-2]["text"] == "8"
    ReconciliationException.objects.update(resolution="accepted", resolved_at=timezone.now())
    [row] = [r for r in finance.get(reverse("finance:dashboard")).context["recon_grid"] if r["gateway"] == "simulator"]
    assert row["cells"][-2]["state"] == "matched"
    assert sum(b.count for b in response.context["ages"]) == 8
    assert b'<svg class="chart chart-bars" viewBox' in response.content


def test_the_dashboards_reconciliation_tables_export(finance, run):
    ages = rows_of(finance.get(reverse("finance:dashboard-export", args=["exceptions-by-age"])))
    days = rows_of(finance.get(reverse("finance:dashboard-export", args=["reconciliation-days"])))
    assert ages[0] == ["age", "open", "overdue"] and sum(int(r[1]) for r in ages[1:]) == 8
    assert days[0][:3] == ["gateway", "day", "state"] and len(days) > 1
