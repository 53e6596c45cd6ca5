"""Reconciliation's ways in: `manage.py reconcile` (dry run and real, with a file or fetched from the
simulator), beat's daily jobs and the inbox folder, and the admin's resolution."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from gateways.simulator.models import SimulatorCharge
from settlements.reconciliation.models import (
    Category,
    GatewayReport,
    ReconciliationException,
    ReconciliationRun,
    RunTrigger,
)
from settlements.reconciliation.services import reconciliation_schedules_ensure
from settlements.reconciliation.tasks import reconciliation_inbox, reconciliation_reconcile_gateway
from tests.factories import captured_payment

from .test_reconciliation import AT, DAY, HEADER, line


@pytest.fixture
def report_file(tmp_path, merchant):
    matched = captured_payment(merchant=merchant, amount="10.00", captured_at=AT, gateway_reference="sim_1")
    captured_payment(merchant=merchant, amount="25.00", captured_at=AT, gateway_reference="sim_2")  # missing
    path = tmp_path / "simulator_2026-11-30.csv"
    path.write_text(HEADER + line("capture", "sim_1", matched.id, "10.00") + line("capture", "sim_x", "", "3.00"))
    return path


def run_command(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("reconcile", *args, stdout=out, stderr=err)
    return out.getvalue()


@pytest.mark.django_db
def test_the_command_dry_run_shows_the_totals_and_writes_nothing(report_file):
    out = run_command("--gateway", "simulator", "--date", "2026-11-30", "--file", str(report_file), "--dry-run")

    assert "(dry run): 2 report line(s)" in out
    assert "matched 1, exceptions 2" in out
    assert "missing_at_gateway   USD          1  25.00 USD" in out
    assert not GatewayReport.objects.exists() and not ReconciliationRun.objects.exists()
    assert not ReconciliationException.objects.exists()


@pytest.mark.django_db
def test_the_command_loads_the_file_and_reconciles_the_day_once(report_file):
    out = run_command("--gateway", "simulator", "--date", "2026-11-30", "--file", str(report_file))
    again = run_command("--gateway", "simulator", "--date", "2026-11-30", "--file", str(report_file))

    assert "matched 1, exceptions 2" in out
    assert "this file was loaded before" in again and "matched 1, exceptions 2" in again
    run = ReconciliationRun.objects.get()
    assert (run.run_count, run.trigger, run.report.name) == (2, RunTrigger.COMMAND, "simulator_2026-11-30.csv")
    assert GatewayReport.objects.count() == 1
    assert set(ReconciliationException.objects.values_list("category", flat=True)) == {
        Category.MISSING_AT_GATEWAY, Category.UNKNOWN_TO_PGI,
    }  # fmt: skip


@pytest.mark.django_db
def test_the_command_refuses_bad_arguments(report_file):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run_command("--gateway", "simulator", "--date", "30.11.2026")
    with pytest.raises(CommandError, match="UNKNOWN_GATEWAY"):
        run_command("--gateway", "nowhere", "--date", "2026-11-30", "--file", str(report_file))
    with pytest.raises(CommandError, match="No file"):
        run_command("--gateway", "simulator", "--file", "/nonexistent.csv")


@pytest.mark.django_db
def test_without_a_file_the_report_is_fetched_from_the_simulator(merchant):
    payment = captured_payment(merchant=merchant, amount="12.00", captured_at=AT, gateway_reference="ch_sim_1")
    SimulatorCharge.objects.create(
        gateway="simulator", reference="ch_sim_1", idempotency_key=payment.id, amount=Decimal("12.00"),
        currency="USD", status=SimulatorCharge.Status.SUCCEEDED, captured_at=AT, account="account123",
        merchant_code=merchant.code, captured_amount=Decimal("12.00"),
    )  # fmt: skip

    out = run_command("--gateway", "simulator", "--date", "2026-11-30")

    assert "1 report line(s) from simulator_2026-11-30.csv" in out and "matched 1, exceptions 0" in out
    report = GatewayReport.objects.get()
    assert (report.source, report.format) == ("connector", "simulator_csv")


@pytest.mark.django_db
def test_beat_has_a_daily_job_per_gateway_and_the_inbox_job():
    daily = PeriodicTask.objects.select_related("crontab").get(name="reconcile-daily-simulator")
    assert daily.task == "settlements.reconciliation.tasks.reconciliation_reconcile_gateway" and daily.enabled
    assert json.loads(daily.kwargs) == {"gateway": "simulator"}
    assert (daily.crontab.hour, daily.crontab.minute) == ("6", "0")
    inbox = PeriodicTask.objects.select_related("interval").get(name="reconcile-inbox")
    assert inbox.task == "settlements.reconciliation.tasks.reconciliation_inbox" and inbox.interval.every == 300


@pytest.mark.django_db
def test_a_gateway_configured_later_gets_its_daily_job(settings):
    settings.PGI_GATEWAYS = {**settings.PGI_GATEWAYS, "simulator_b": settings.PGI_GATEWAYS["simulator"]}

    assert reconciliation_schedules_ensure() == ["reconcile-daily-simulator_b"]
    assert reconciliation_schedules_ensure() == []
    assert json.loads(PeriodicTask.objects.get(name="reconcile-daily-simulator_b").kwargs) == {"gateway": "simulator_b"}


@pytest.mark.django_db
def test_the_daily_job_reconciles_the_day_before(merchant, settings, monkeypatch):
    from settlements.reconciliation import services

    monkeypatch.setattr(services, "reconciliation_day_default", lambda: DAY)
    captured_payment(merchant=merchant, amount="8.00", captured_at=AT, gateway_reference="sim_8")

    result = reconciliation_reconcile_gateway.apply(kwargs={"gateway": "simulator"}).get()

    run = ReconciliationRun.objects.get()
    assert (run.day, run.trigger, result["exceptions"]) == (DAY, RunTrigger.BEAT, 1)
    assert ReconciliationException.objects.get().category == Category.MISSING_AT_GATEWAY


@pytest.mark.django_db
def test_the_inbox_job_loads_files_and_moves_them(report_file, tmp_path, settings):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings.PGI_RECONCILIATION = {**settings.PGI_RECONCILIATION, "inbox_dir": str(inbox)}
    report_file.rename(inbox / report_file.name)
    (inbox / "notes.csv").write_text(HEADER)  # no gateway and day in the name
    (inbox / "simulator_2026-11-29.csv").write_text("not,a,report\n")
    (inbox / "README.txt").write_text("left alone")

    result = reconciliation_inbox.apply().get()

    assert result == {"processed": 1, "failed": 2}
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["README.txt"]
    processed = [p.name for p in (inbox / "processed").iterdir()]
    assert len(processed) == 1 and processed[0].endswith("_simulator_2026-11-30.csv")
    failed = sorted(p.name for p in (inbox / "failed").iterdir())
    assert len(failed) == 4 and sum(name.endswith(".error.txt") for name in failed) == 2
    errors = " ".join(p.read_text() for p in (inbox / "failed").glob("*.error.txt"))
    assert "INBOX_NAME_INVALID" in errors and "REPORT_FORMAT_UNKNOWN" in errors
    run = ReconciliationRun.objects.get()
    assert (run.day, run.trigger, run.report.source) == (DAY, RunTrigger.INBOX, "inbox")


@pytest.mark.django_db
def test_staff_resolve_an_exception_in_the_admin(report_file, admin_client, admin_user):
    run_command("--gateway", "simulator", "--date", "2026-11-30", "--file", str(report_file))
    exc = ReconciliationException.objects.get(category=Category.UNKNOWN_TO_PGI)
    url = reverse("admin:settlements_reconciliationexception_change", args=[exc.pk])

    assert admin_client.get(reverse("admin:settlements_reconciliationrun_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:settlements_reconciliationexception_changelist") + "?overdue=yes").status_code == 200
    report = GatewayReport.objects.get()
    download = admin_client.get(reverse("admin:settlements_gatewayreport_file", args=[report.pk]))
    assert download.content == report_file.read_bytes() and download["X-Content-SHA256"] == report.sha256
    response = admin_client.post(url, {"resolution": "written_off", "resolution_note": "below threshold",
                                       "amount": "999"})  # fmt: skip
    assert response.status_code == 302

    exc.refresh_from_db()
    assert (exc.resolution, exc.resolution_note, exc.resolved_by) == ("written_off", "below threshold", admin_user)
    assert exc.amount == Decimal("3.00") and exc.resolved_at is not None
    # Resolved: the page is read-only now.
    assert admin_client.post(url, {"resolution": "accepted", "resolution_note": "x"}).status_code == 403
    exc.refresh_from_db()
    assert exc.resolution == "written_off"
    assert dt.date(2026, 11, 30) == exc.day


@pytest.mark.django_db
def test_a_dry_run_without_a_file_fetches_the_report_and_keeps_nothing(merchant):
    captured_payment(merchant=merchant, amount="8.00", captured_at=AT, gateway_reference="sim_8")

    out = run_command("--gateway", "simulator", "--date", "2026-11-30", "--dry-run")

    assert "(dry run): 0 report line(s)" in out and "matched 0, exceptions 1" in out
    assert not GatewayReport.objects.exists() and not ReconciliationRun.objects.exists()
