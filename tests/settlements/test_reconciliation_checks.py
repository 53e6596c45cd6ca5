"""Reconciliation refuses what it cannot trust and keeps its sums straight: every value of a report
is checked (amounts against the currency's digits, the day, record types, field sizes, UTF-8); the
totals keep the report's money, PGI's and webhook-only entries apart; conflicting references and
repeated lines; the day's current report; days out of range; the inbox's files."""

import datetime as dt
import os
from decimal import Decimal

import pytest
from django.core.management import CommandError
from django.urls import reverse

from gateways.models import GatewayNotification
from payments.models import PaymentStatus
from pgi.errors import ValidationFailed
from refunds.models import RefundStatus
from settlements.reconciliation.models import (
    Category,
    GatewayReport,
    GatewayReportLine,
    ReconciliationException,
    ReconciliationRun,
    ReconciliationTotal,
)
from settlements.reconciliation.services import (
    inbox_moved_name,
    reconciliation_file_run,
    reconciliation_inbox_process,
    reconciliation_run,
)
from tests.factories import PaymentFactory, captured_payment, completed_refund

from .test_reconciliation import AT, DAY, HEADER, assert_totals_invariant, line
from .test_reconciliation_jobs import run_command

NAME = "simulator_2026-11-30.csv"


def load(content: bytes | str):
    data = content.encode() if isinstance(content, str) else content
    return reconciliation_file_run(gateway="simulator", day=DAY, data=data, name=NAME, source="command",
                                   trigger="command")  # fmt: skip


def refused(content: bytes | str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        load(content)
    assert caught.value.code == "REPORT_LINE_INVALID"
    assert not GatewayReport.objects.exists() and not GatewayReportLine.objects.exists()
    assert not ReconciliationRun.objects.exists()
    return caught.value.message


def raw(kind="capture", amount="10.00", currency="USD", booked="2026-11-30T10:00:00Z", status="settled", fee="0.39"):
    return f"{kind},sim_x,pay_x,,{amount},{currency},{fee},{booked},{status}\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad",
    [
        raw(amount="100.00004"), raw(amount="12.345", currency="EUR"), raw(amount="5000.4", currency="JPY"),
        raw(amount="1.5004", currency="KWD"), raw(amount="NaN"), raw(amount="-5.00"), raw(amount="-0"),
        raw(amount="0"), raw(amount="0.00"), raw(amount="1e5"), raw(amount="+5.00"), raw(amount=".5"),
        raw(amount="5."), raw(amount=""), raw(amount="123456789012345.00"), raw(fee="0.001"), raw(fee="-1"),
        raw(currency="XXX"), raw(currency="US"), raw(booked="2026-12-02T10:00:00Z"),
        raw(booked="2026-11-30T23:30:00-02:00"), raw(booked="yesterday"), raw(status="s" * 33),
        raw(kind="chargeback"), raw(kind="bogus"),
    ],
)  # fmt: skip
def test_a_bad_value_refuses_the_whole_file_naming_its_line(merchant, bad):
    message = refused(HEADER + raw() + bad)
    assert message.startswith("Report line 3 cannot be read"), message


@pytest.mark.django_db
def test_amounts_within_the_currencys_digits_load_exactly(merchant):
    outcome = load(HEADER + raw(amount="5000", currency="JPY", fee="") + raw(amount="1.500", currency="KWD", fee="0.125")
                   + raw(amount="12.30", currency="EUR") + raw(amount="7", fee=""))  # fmt: skip
    assert sorted(GatewayReportLine.objects.values_list("amount", "currency")) == [
        (Decimal("1.5"), "KWD"), (Decimal("7"), "USD"), (Decimal("12.3"), "EUR"), (Decimal("5000"), "JPY"),
    ]  # fmt: skip
    assert outcome.report.line_count == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad, number",
    [
        (HEADER + raw() + "capture,sim_y,pay_y,,1,000.00,USD,0.39,2026-11-30T10:00:00Z,settled\n", 3),  # one field too many
        (HEADER + raw() + raw() + "capture,sim_y,pay_y,,1.00,USD\n", 4),  # fields missing
        (HEADER + "capture,a,b\n", 2),
        (HEADER + raw() + raw().replace("sim_x", "sim\x00x"), 3),
        (HEADER.encode() + raw().encode() + "capture,sim_é,pay_x,,1.00,USD,,2026-11-30T10:00:00Z,s\n".encode("latin-1"), 3),
    ],
)  # fmt: skip
def test_unreadable_lines_are_refused_with_their_number(merchant, bad, number):
    message = refused(bad)
    assert message.startswith(f"Report line {number} "), message
    assert "Traceback" not in message and "COPY" not in message


@pytest.mark.django_db
def test_blank_lines_are_skipped_and_the_line_numbers_hold(merchant):
    outcome = load(HEADER + raw() + "\n" + "   \n" + raw(amount="2.00") + "\n")
    assert outcome.report.line_count == 2
    assert sorted(GatewayReportLine.objects.values_list("line_no", flat=True)) == [2, 5]
    with pytest.raises(ValidationFailed, match="^Report line 3 "):
        load(HEADER + "\n" + raw(amount="x"))


@pytest.mark.django_db
def test_lines_cut_across_read_chunks_keep_their_numbers(merchant, monkeypatch):
    # The file is checked and sent to COPY a chunk of whole lines at a time: with chunks of a few
    # bytes every line and blank line (white space, a CR) is cut somewhere, and the numbers hold.
    from settlements.reconciliation import loading

    monkeypatch.setattr(loading, "READ_CHUNK", 7)
    body = raw() + "\r\n" + raw(amount="2.00") + " \t\n" + raw(amount="3.00").rstrip("\n")
    outcome = load(HEADER + body + "\n  ")
    assert outcome.report.line_count == 3
    assert sorted(GatewayReportLine.objects.values_list("line_no", "amount")) == [
        (2, Decimal("10")), (4, Decimal("2")), (6, Decimal("3")),
    ]  # fmt: skip
    with pytest.raises(ValidationFailed, match="^Report line 5 cannot be read: amount 'x'"):
        load(HEADER + raw() + "\n\n" + raw(amount="x"))
    with pytest.raises(ValidationFailed, match="^Report line 4 holds a NUL byte"):
        load(HEADER + raw() + "\n" + raw().replace("sim_x", "sim\x00x"))


@pytest.fixture
def money_day(merchant):
    """A day whose totals are easy to get wrong: a currency mismatch, a repeated capture, a declined
    payment and a failed refund in the report, two unmatched webhooks."""
    eur = captured_payment(merchant=merchant, amount="30.00", currency="EUR", captured_at=AT, gateway_reference="sim_eur")
    gbp = captured_payment(merchant=merchant, amount="10.00", currency="GBP", captured_at=AT, gateway_reference="sim_gbp")
    usd = captured_payment(merchant=merchant, amount="9.99", captured_at=AT, gateway_reference="sim_usd")
    declined = PaymentFactory(merchant=merchant, amount=Decimal("7.00"), status=PaymentStatus.FAILED,
                              gateway_reference="sim_declined")  # fmt: skip
    failed_refund = completed_refund(payment=usd, amount="1.02", completed_at=AT)
    failed_refund.status = RefundStatus.FAILED
    failed_refund.gateway_reference = "re_failed"
    failed_refund.save()
    for n in (1, 2):
        GatewayNotification.objects.create(
            gateway="simulator", event_id=f"evt_{n}", event_type="charge.succeeded", operation="authorize",
            payment_id=f"pay_ghost{n}", gateway_reference=f"sim_ghost{n}", status="succeeded", amount=Decimal("25.00"),
            currency="USD", outcome=GatewayNotification.Outcome.UNMATCHED,
        )  # fmt: skip
    GatewayNotification.objects.update(received_at=AT)
    report = HEADER + "".join([
        line("capture", "sim_eur", eur.id, "33.00", currency="USD"),
        line("capture", "sim_gbp", gbp.id, "10.00", currency="GBP"),
        line("capture", "sim_gbp", gbp.id, "10.00", currency="GBP"),
        line("capture", "sim_usd", usd.id, "9.99"),
        line("capture", "sim_declined", declined.id, "7.00"),
        line("refund", "re_failed", usd.id, "1.02", refund_id=failed_refund.id),
    ])  # fmt: skip
    return report


@pytest.mark.django_db
def test_totals_keep_the_reports_money_pgis_and_webhooks_apart(money_day):
    outcome = load(money_day)
    totals = {(t.category, t.currency): t for t in ReconciliationTotal.objects.filter(run=outcome.run)}
    # The report's USD lines add to 33.00 + 9.99 + 7.00 + 1.02; the webhooks' 50.00 are apart.
    assert sum(t.report_amount for (_, c), t in totals.items() if c == "USD") == Decimal("51.01")
    assert totals[(Category.UNKNOWN_TO_PGI, "USD")].count == 2
    assert totals[(Category.UNKNOWN_TO_PGI, "USD")].webhook_amount == Decimal("50.00")
    # PGI moved 30.00 EUR, 10.00 GBP and 9.99 USD: each once, in its own currency.
    assert totals[(Category.CURRENCY_MISMATCH, "EUR")].pgi_amount == Decimal("30.00")
    assert totals[(Category.CURRENCY_MISMATCH, "USD")].pgi_amount == 0
    assert totals[(Category.DUPLICATE, "GBP")].pgi_amount == 0
    assert totals[(Category.MATCHED, "GBP")].pgi_amount == Decimal("10.00")
    assert totals[(Category.STATUS_MISMATCH, "USD")].count == 2
    assert totals[(Category.STATUS_MISMATCH, "USD")].pgi_amount == 0
    assert_totals_invariant(outcome.run, outcome.report)


@pytest.mark.django_db
def test_lines_with_conflicting_references_match_nothing(merchant):
    a = captured_payment(merchant=merchant, amount="10.00", captured_at=AT, gateway_reference="sim_a")
    b = captured_payment(merchant=merchant, amount="10.00", captured_at=AT, gateway_reference="sim_b")
    refund = completed_refund(payment=a, amount="2.00", completed_at=AT)
    load(HEADER + line("capture", "sim_a", b.id, "10.00") + line("refund", "", b.id, "2.00", refund_id=refund.id))
    found = {e.reference: e for e in ReconciliationException.objects.all()}
    assert found["payment:sim_a"].category == Category.UNKNOWN_TO_PGI
    assert "conflicting references" in found["payment:sim_a"].detail
    assert found[f"refund:{b.id}"].category == Category.UNKNOWN_TO_PGI
    assert f"is of payment {a.id}" in found[f"refund:{b.id}"].detail
    # Neither line books PGI's operations: all three are missing at the gateway.
    missing = set(ReconciliationException.objects.filter(category=Category.MISSING_AT_GATEWAY).values_list("reference", flat=True))
    assert missing == {a.id, b.id, refund.id}


@pytest.mark.django_db
def test_of_repeated_lines_the_one_that_agrees_is_the_booking(merchant):
    p = captured_payment(merchant=merchant, amount="10.00", captured_at=AT, gateway_reference="sim_p")
    outcome = load(HEADER + line("capture", "sim_p", p.id, "11.00") + line("capture", "sim_p", p.id, "10.00"))
    assert outcome.totals.matched == 1
    duplicate = ReconciliationException.objects.get()
    assert (duplicate.category, duplicate.line_no, duplicate.report_amount) == (Category.DUPLICATE, 2, Decimal("11"))


@pytest.mark.django_db
def test_the_report_imported_last_is_the_days_report_for_every_run(merchant):
    p = captured_payment(merchant=merchant, amount="10.00", captured_at=AT, gateway_reference="sim_p")
    older = load(HEADER + line("capture", "sim_p", p.id, "10.00")).report
    newer = load(HEADER + line("capture", "sim_p", p.id, "12.00")).report
    assert reconciliation_run(gateway="simulator", day=DAY).report == newer
    again = load(HEADER + line("capture", "sim_p", p.id, "10.00"))
    assert not again.report_created and again.report == older
    rerun = reconciliation_run(gateway="simulator", day=DAY)
    assert rerun.report == older and rerun.totals.matched == 1
    assert ReconciliationRun.objects.get().report == older


@pytest.mark.django_db
def test_no_fetch_for_a_day_not_over_and_no_day_out_of_range(merchant):
    from django.utils import timezone

    today = timezone.now().date()
    for day in (today, today + dt.timedelta(days=1), dt.date(2027, 1, 1)):
        with pytest.raises(ValidationFailed) as caught:
            reconciliation_run(gateway="simulator", day=day)
        assert caught.value.code in ("REPORT_DAY_NOT_OVER", "REPORT_DAY_INVALID")
    from settlements.reconciliation.tasks import reconciliation_reconcile_gateway

    with pytest.raises(ValidationFailed, match="has not ended"):
        reconciliation_reconcile_gateway.apply(kwargs={"gateway": "simulator", "day": today.isoformat()}).get()
    for date in ("9999-12-31", "0001-01-01", today.isoformat()):
        with pytest.raises(CommandError, match="REPORT_DAY"):
            run_command("--gateway", "simulator", "--date", date)
    assert not GatewayReport.objects.exists() and not ReconciliationRun.objects.exists()


@pytest.mark.django_db
def test_the_command_refuses_a_file_for_a_day_out_of_range(tmp_path, merchant):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + raw(booked="0001-01-01T10:00:00Z"))
    with pytest.raises(CommandError, match="REPORT_DAY_INVALID"):
        run_command("--gateway", "simulator", "--date", "0001-01-01", "--file", str(path))
    with pytest.raises(CommandError, match="REPORT_LINE_INVALID: Report line 2"):
        run_command("--gateway", "simulator", "--date", "2026-11-30", "--file", str(path))
    assert not GatewayReport.objects.exists() and not ReconciliationRun.objects.exists()


@pytest.mark.django_db
def test_the_inbox_refuses_links_and_bad_files_and_goes_on(merchant, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(HEADER + raw(booked="2026-11-28T10:00:00Z"))
    (inbox / "simulator_2026-11-28.csv").symlink_to(outside)
    (inbox / "simulator_2026-11-27.csv").symlink_to("/etc/passwd")
    (inbox / "simulator_2026-11-26.csv").write_text(HEADER + "capture,a,b\n")
    long_name = "simulator_2026-11-25_" + "x" * 225 + ".csv"
    (inbox / long_name).write_text(HEADER + raw(booked="2026-11-25T10:00:00Z"))
    (inbox / "SIMULATOR_2026-11-24.CSV").write_text(HEADER + raw(booked="2026-11-24T10:00:00Z"))
    for name in (".simulator_2026-11-23.csv", "simulator_2026-11-23.csv~", "simulator_2026-11-23.csv.part",
                 "simulator_2026-11-23.tmp"):  # fmt: skip
        (inbox / name).write_text(HEADER + raw(booked="2026-11-23T10:00:00Z"))

    outcomes = {o.name: o for o in reconciliation_inbox_process(inbox=inbox)}

    assert not outcomes["simulator_2026-11-28.csv"].ok and not outcomes["simulator_2026-11-27.csv"].ok
    assert "INBOX_NOT_A_FILE" in outcomes["simulator_2026-11-28.csv"].message
    assert "REPORT_LINE_INVALID: Report line 2" in outcomes["simulator_2026-11-26.csv"].message
    assert outcomes[long_name].ok and outcomes["SIMULATOR_2026-11-24.CSV"].ok
    assert sorted(GatewayReport.objects.values_list("day", flat=True)) == [dt.date(2026, 11, 24), dt.date(2026, 11, 25)]
    left = sorted(p.name for p in inbox.iterdir() if not p.is_dir())
    assert left == sorted([".simulator_2026-11-23.csv", "simulator_2026-11-23.csv~", "simulator_2026-11-23.csv.part",
                           "simulator_2026-11-23.tmp"])  # fmt: skip
    assert all(len(p.name.encode()) <= 255 for p in (inbox / "failed").iterdir())
    assert len(list((inbox / "processed").iterdir())) == 2
    assert outside.exists()  # a link is moved as a link, never followed


def test_moved_names_stay_within_the_limit():
    name = "simulator_2026-11-21_" + "é" * 200 + ".csv"
    moved = inbox_moved_name("20261202T080000", name)
    assert len(moved.encode()) <= 245 and moved.endswith(".csv") and moved.startswith("20261202T080000_simulator_")
    assert moved != inbox_moved_name("20261202T080000", name[:-5] + "y.csv")
    assert inbox_moved_name("20261202T080000", "simulator_2026-11-21.csv") == "20261202T080000_simulator_2026-11-21.csv"


@pytest.mark.django_db
def test_staff_resolve_many_exceptions_at_once_in_the_admin(merchant, admin_client, admin_user, client, django_user_model):
    load(HEADER + line("capture", "sim_u1", "", "1.00") + line("capture", "sim_u2", "", "2.00")
         + line("capture", "sim_u3", "", "3.00"))  # fmt: skip
    ids = list(ReconciliationException.objects.order_by("id").values_list("pk", flat=True))
    url = reverse("admin:settlements_reconciliationexception_changelist")
    ReconciliationException.objects.filter(pk=ids[2]).update(
        resolution="accepted", resolution_note="earlier", resolved_at=AT, resolved_by=admin_user
    )
    page = admin_client.post(url, {"action": "resolve_selected", "_selected_action": ids})
    assert page.status_code == 200 and b"Resolve 3 selected exceptions" in page.content
    assert not ReconciliationException.objects.filter(pk__in=ids[:2]).exclude(resolution="").exists()
    done = admin_client.post(url, {"action": "resolve_selected", "_selected_action": ids, "post": "yes",
                                   "resolution": "escalated", "note": "asked the gateway"})  # fmt: skip
    assert done.status_code == 302
    got = {e.pk: (e.resolution, e.resolution_note) for e in ReconciliationException.objects.all()}
    assert got == {ids[0]: ("escalated", "asked the gateway"), ids[1]: ("escalated", "asked the gateway"),
                   ids[2]: ("accepted", "earlier")}  # fmt: skip

    # Staff without the resolve permission have no such action.
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1234", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_reconciliationexception"))
    client.force_login(viewer)
    ReconciliationException.objects.update(resolution="", resolution_note="", resolved_at=None, resolved_by=None)
    client.post(url, {"action": "resolve_selected", "_selected_action": ids, "post": "yes", "resolution": "accepted",
                      "note": "x"})  # fmt: skip
    assert not ReconciliationException.objects.exclude(resolution="").exists()


@pytest.mark.parametrize(
    "row, problem",
    [
        (["capture", "r", "p", "", "100.00004", "USD", "", "2026-11-30T10:00:00Z", "s"], "more decimals than USD's 2"),
        (["capture", "r", "p", "", "5000.4", "JPY", "", "2026-11-30T10:00:00Z", "s"], "more decimals than JPY's 0"),
        (["capture", "r", "p", "", "NaN", "USD", "", "2026-11-30T10:00:00Z", "s"], "not a plain decimal"),
        (["capture", "r", "p", "", "0", "USD", "", "2026-11-30T10:00:00Z", "s"], "is zero"),
        (["capture", "r", "p", "", "1.00", "USD", "", "2026-12-02T10:00:00Z", "s"], "not on the report's day"),
        (["chargeback", "r", "p", "", "1.00", "USD", "", "2026-11-30T10:00:00Z", "s"], "record type"),
        (["capture", "r", "p", "", "1.00", "USD", "", "2026-11-30T10:00:00Z", "s" * 33], "status is longer"),
        (["capture", "r", "p", "", "1.500", "KWD", "0.125", "2026-11-30T10:00:00Z", "s"], None),
    ],
)  # fmt: skip
def test_the_checks_sqlite_makes_in_python_are_those_of_postgresql(row, problem):
    from settlements.reconciliation.loading import line_problem

    found = line_problem("simulator_csv", row, DAY)
    assert (found is None) if problem is None else (problem in found), found


@pytest.mark.django_db
def test_a_file_that_cannot_be_moved_never_blocks_the_next(merchant, tmp_path, monkeypatch):
    from settlements.reconciliation import services

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stuck = inbox / "simulator_2026-11-25.csv"
    stuck.write_text(HEADER + raw(booked="2026-11-25T10:00:00Z"))
    os.utime(stuck, (1, 1))  # the oldest: taken first
    (inbox / "simulator_2026-11-26.csv").write_text(HEADER + raw(booked="2026-11-26T10:00:00Z"))
    rename = os.rename

    def failing(src, dst):
        if os.fspath(src) == os.fspath(stuck):
            raise OSError(36, "File name too long")
        return rename(src, dst)

    monkeypatch.setattr(services.os, "rename", failing)
    outcomes = reconciliation_inbox_process(inbox=inbox)

    assert [o.name for o in outcomes] == ["simulator_2026-11-25.csv", "simulator_2026-11-26.csv"]
    assert "not moved" in outcomes[0].message and outcomes[1].ok
    assert sorted(GatewayReport.objects.values_list("day", flat=True)) == [dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
