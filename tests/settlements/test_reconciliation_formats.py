"""The report formats PGI reads (docs/08-batch-processing.md, "Report formats per gateway"): each
gateway's file lands in the same normalized lines, which the same match then reads."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from settlements.reconciliation import selectors
from settlements.reconciliation.loading import lines_csv, report_load
from settlements.reconciliation.models import Category, GatewayReportLine, LineKind, ReportFormat
from settlements.reconciliation.services import reconciliation_file_run
from tests.factories import captured_payment, completed_refund

DAY = dt.date(2026, 11, 30)
AT = dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)

STRIPE = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,payment_intent_id,payment_metadata[pgi_payment_id],refund_metadata[pgi_refund_id]\n"
    "txn_1,2026-11-30 09:30:00,2026-12-02 00:00:00,usd,25.00,1.03,23.97,charge,ch_1,,pi_1,{payment},\n"
    "txn_2,2026-11-30 10:00:00,2026-12-02 00:00:00,usd,-5.00,0.00,-5.00,refund,re_1,,pi_1,{payment},{refund}\n"
    "txn_3,2026-11-30 11:00:00,2026-12-02 00:00:00,usd,-2.00,0.00,-2.00,fee,,Radar fee,,,\n"
)
ADYEN = (
    "Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,Booking Date,TimeZone,"
    "Main Currency,Main Amount,Record Type,Payment Currency,Received (PC),Authorised (PC),Captured (PC),"
    "Settlement Currency,Payable (SC),Commission (SC),Markup (SC),Scheme Fees (SC),Interchange (SC),"
    "Processing Fee Currency,Processing Fee (FC),User Name,Payment Method Variant,Modification Merchant Reference\n"
    "Bank,BankEUR,8815000000000001,{payment},visa,2026-11-30 10:30:00,CET,EUR,40.00,Authorised,EUR,,40.00,,,,,,,,,,u,visa,\n"
    "Bank,BankEUR,8815000000000001,{payment},visa,2026-11-30 10:30:00,CET,EUR,40.00,Settled,EUR,,,40.00,EUR,39.10,"
    "0.50,0.10,0.20,0.10,,,u,visa,\n"
    "Bank,OtherAccount,8815000000000009,pay_other,visa,2026-11-30 10:30:00,CET,EUR,9.00,Settled,EUR,,,9.00,EUR,"
    "8.80,0.20,,,,,,u,visa,\n"
)


@pytest.mark.django_db
def test_a_stripe_itemized_balance_change_report(merchant):
    payment = captured_payment(merchant=merchant, amount="25.00", captured_at=AT, gateway_reference="pi_1",
                               gateway="simulator")  # fmt: skip
    refund = completed_refund(payment=payment, amount="5.00", completed_at=AT)
    refund.gateway_reference = "re_1"
    refund.save()
    data = STRIPE.format(payment=payment.id, refund=refund.id).encode()

    outcome = reconciliation_file_run(gateway="simulator", day=DAY, data=data, name="stripe.csv", source="upload",
                                      trigger="upload")  # fmt: skip

    assert outcome.report.format == ReportFormat.STRIPE
    lines = list(GatewayReportLine.objects.filter(report=outcome.report).order_by("line_no"))
    assert [(l.kind, l.gateway_reference, l.amount, l.currency, l.fee) for l in lines] == [
        (LineKind.PAYMENT, "pi_1", Decimal("25.00"), "USD", Decimal("1.03")),
        (LineKind.REFUND, "re_1", Decimal("5.00"), "USD", Decimal("0")),
        (LineKind.FEE, "txn_3", Decimal("2.00"), "USD", Decimal("0")),
    ]
    assert lines[0].booked_at == AT and lines[1].refund_id == refund.id
    assert outcome.totals.matched == 2
    assert outcome.totals.count(Category.UNKNOWN_TO_PGI) == 1  # the fee the gateway booked on its own


@pytest.mark.django_db
def test_an_adyen_payments_accounting_report(merchant, settings):
    payment = captured_payment(merchant=merchant, amount="40.00", currency="EUR", captured_at=AT,
                               gateway_reference="8815000000000001")  # fmt: skip
    data = ADYEN.format(payment=payment.id).encode()

    loaded = report_load(gateway="simulator", day=DAY, source="upload", name="adyen.csv", data=data)

    assert loaded.report.format == ReportFormat.ADYEN
    # The lifecycle line is skipped; the other merchant account's too (when the gateway is not an
    # Adyen connector, the account is each line's own, so it is kept: here, two settled lines).
    lines = list(GatewayReportLine.objects.filter(report=loaded.report).order_by("line_no"))
    assert [(l.kind, l.gateway_reference, l.amount, l.fee, l.status) for l in lines][0] == (
        LineKind.PAYMENT, "8815000000000001", Decimal("40.00"), Decimal("0.90"), "Settled",
    )  # fmt: skip
    assert lines[0].booked_at == dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)  # 10:30 CET
    assert [line.line_no for line in lines] == [3, 4]


@pytest.mark.django_db
def test_a_connectors_lines_are_kept_in_pgis_line_format(merchant):
    from gateways.base import ReportLine

    payment = captured_payment(merchant=merchant, amount="12.34", captured_at=AT, gateway_reference="ref_1")
    data = lines_csv([
        ReportLine(kind=ReportLine.Kind.PAYMENT, gateway_reference="ref_1", payment_id=payment.id,
                   amount=Decimal("12.34"), currency="USD", booked_at=AT, fee=None, status="settled"),
    ])  # fmt: skip

    outcome = reconciliation_file_run(gateway="simulator", day=DAY, data=data, name="l.csv", source="connector",
                                      trigger="beat")  # fmt: skip

    assert outcome.report.format == ReportFormat.PGI
    line = GatewayReportLine.objects.get(report=outcome.report)
    assert (line.kind, line.fee, line.booked_at) == (LineKind.PAYMENT, None, AT)
    assert outcome.totals.matched == 1 and outcome.totals.exceptions == 0


@pytest.mark.django_db
def test_the_runs_selector_reads_runs_and_totals_in_two_queries(merchant):
    for offset in range(3):
        day = DAY - dt.timedelta(days=offset)
        at = dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
        captured_payment(merchant=merchant, amount="1.00", captured_at=at, gateway_reference=f"r{offset}")
        reconciliation_file_run(gateway="simulator", day=day, data=lines_csv([]), name=f"{offset}.csv",
                                source="upload", trigger="upload")  # fmt: skip

    with CaptureQueriesContext(connection) as queries:
        runs = list(selectors.reconciliation_runs())
        seen = [run.totals_by_currency["USD"][Category.MISSING_AT_GATEWAY]["count"] for run in runs]
    assert len(queries) == 2
    assert seen == [1, 1, 1] and [run.open_exceptions for run in runs] == [1, 1, 1]
    assert [run.day for run in runs] == [DAY, DAY - dt.timedelta(days=1), DAY - dt.timedelta(days=2)]
