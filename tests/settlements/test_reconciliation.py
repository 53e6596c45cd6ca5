"""Reconciliation on PostgreSQL: a crafted simulator report against crafted payments and refunds
lands every line and every operation of the day in exactly one category; re-imports, reruns and
resolutions behave."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from gateways.models import GatewayNotification
from payments.models import PaymentStatus
from pgi.errors import NotFound, ValidationFailed
from settlements.models import LineKind as SettlementLineKind
from settlements.models import SettlementBatch, SettlementLine
from settlements.reconciliation import selectors
from settlements.reconciliation.loading import report_content
from settlements.reconciliation.models import (
    Category,
    GatewayReport,
    GatewayReportLine,
    ReconciliationException,
    ReconciliationRun,
    ReconciliationTotal,
    Resolution,
)
from settlements.reconciliation.services import (
    ResolveOutcome,
    reconciliation_exceptions_resolve,
    reconciliation_file_run,
    reconciliation_report_upload,
    reconciliation_run,
)
from tests.factories import PaymentFactory, captured_payment, completed_refund

DAY = dt.date(2026, 11, 30)
AT = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
HEADER = "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"


def line(kind, reference, payment_id, amount, currency="USD", refund_id="", fee="0.39"):
    status = "settled" if kind == "capture" else "refunded"
    return f"{kind},{reference},{payment_id},{refund_id},{amount},{currency},{fee},2026-11-30T10:00:00Z,{status}\n"


@pytest.fixture
def day(merchant):
    return crafted_day(merchant)


def crafted_day(merchant) -> dict:
    """PGI's side of the day, and the report that covers it: one case of each category (also
    seeded on SQLite by reconciliation_sqlite_child.py)."""
    p = {
        name: captured_payment(merchant=merchant, amount=amount, captured_at=AT, gateway_reference=f"sim_{name}")
        for name, amount in [("match", "10.00"), ("amount", "20.00"), ("currency", "30.00"), ("missing", "40.00")]
    }
    p["by_id"] = captured_payment(merchant=merchant, amount="50.00", captured_at=AT, gateway_reference="")
    p["failed"] = PaymentFactory(
        merchant=merchant, amount=Decimal("60.00"), status=PaymentStatus.FAILED, gateway_reference="sim_failed"
    )
    refunded = completed_refund(payment=p["match"], amount="4.00", completed_at=AT)
    refunded.gateway_reference = "re_match"
    refunded.save()
    missing_refund = completed_refund(payment=p["amount"], amount="5.00", completed_at=AT)
    GatewayNotification.objects.create(
        gateway="simulator", event_id="evt_ghost", event_type="charge.succeeded", operation="authorize",
        payment_id="pay_ghost", gateway_reference="sim_ghost", status="succeeded", amount=Decimal("7.00"),
        currency="USD", outcome=GatewayNotification.Outcome.UNMATCHED,
    )  # fmt: skip
    GatewayNotification.objects.filter(event_id="evt_ghost").update(received_at=AT)
    report = HEADER + "".join([
        line("capture", "sim_match", p["match"].id, "10.00"),
        line("capture", "sim_amount", p["amount"].id, "19.00"),
        line("capture", "sim_currency", p["currency"].id, "30.00", currency="EUR"),
        line("capture", "sim_failed", p["failed"].id, "60.00"),
        line("capture", "", p["by_id"].id, "50.00"),
        line("capture", "sim_unknown", "pay_unknown", "70.00"),
        line("capture", "sim_match", p["match"].id, "10.00"),  # the same capture twice
        line("refund", "re_match", p["match"].id, "4.00", refund_id=refunded.id),
    ])  # fmt: skip
    return {"payments": p, "refund": refunded, "missing_refund": missing_refund, "report": report.encode()}


def assert_totals_invariant(run, report) -> None:
    """Per currency: report_amount is the report's lines to the cent, pgi_amount what PGI moved
    that day with the gateway (captured payments and completed refunds of the day)."""
    from django.db.models import Sum

    from settlements.reconciliation.matching import OPS, _operations_sql, day_bounds

    totals = ReconciliationTotal.objects.filter(run=run)
    lines = dict(
        GatewayReportLine.objects.filter(report=report).values("currency").annotate(s=Sum("amount")).values_list("currency", "s")
    ) if report else {}
    report_side = {c: s for c, s in totals.values("currency").annotate(s=Sum("report_amount")).values_list("currency", "s") if s}
    assert report_side == {c: s for c, s in lines.items() if s}
    start, end = day_bounds(run.day)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {OPS}")
        cursor.execute(_operations_sql(), {"gateway": run.gateway, "start": start, "end": end})
        cursor.execute(f"SELECT currency, SUM(amount) FROM {OPS} GROUP BY currency")
        moved = {c: s for c, s in cursor.fetchall() if s}
        cursor.execute(f"DROP TABLE {OPS}")
    pgi_side = {c: s for c, s in totals.values("currency").annotate(s=Sum("pgi_amount")).values_list("currency", "s") if s}
    assert pgi_side == moved


def categories() -> dict[str, list[str]]:
    found = {}
    for exc in ReconciliationException.objects.filter(present=True).order_by("reference"):
        found.setdefault(exc.category, []).append(exc.reference)
    return found


@pytest.mark.django_db
def test_a_crafted_report_produces_every_category(day):
    p = day["payments"]

    outcome = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="simulator_2026-11-30.csv", source="command",
        trigger="command",
    )  # fmt: skip

    assert outcome.report_created and outcome.report.line_count == 8
    assert categories() == {
        Category.AMOUNT_MISMATCH: [p["amount"].id],
        Category.CURRENCY_MISMATCH: [p["currency"].id],
        Category.STATUS_MISMATCH: [p["failed"].id],
        Category.MISSING_AT_GATEWAY: [p["missing"].id, day["missing_refund"].id],
        Category.UNKNOWN_TO_PGI: ["payment:sim_unknown", "webhook:evt_ghost"],
        Category.DUPLICATE: [f"{p['match'].id}#2"],
    }
    run = outcome.run
    assert outcome.totals.matched == 3  # the capture, the one found by payment id, the refund
    assert (run.line_count, run.matched_count, run.exception_count) == (8, 3, 8)
    # The day's operations: five captured payments and two completed refunds.
    assert run.operation_count == 7
    mismatch = ReconciliationException.objects.get(category=Category.AMOUNT_MISMATCH)
    assert (mismatch.report_amount, mismatch.pgi_amount, mismatch.payment_id) == (
        Decimal("19.00"), Decimal("20.00"), p["amount"].id,
    )  # fmt: skip


@pytest.mark.django_db
def test_totals_equal_the_lines_and_operations(day):
    outcome = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="r.csv", source="command", trigger="command"
    )
    run = outcome.run
    totals = ReconciliationTotal.objects.filter(run=run)
    by_line = sum(t.count for t in totals if t.category not in (Category.MISSING_AT_GATEWAY,))
    # Every line once; the unmatched webhook is one more row of unknown_to_pgi.
    assert by_line == GatewayReportLine.objects.filter(report=outcome.report).count() + 1
    assert sum(t.count for t in totals.filter(category=Category.MISSING_AT_GATEWAY)) == 2
    assert [
        [t.category, t.currency, t.count, t.report_amount, t.pgi_amount, t.webhook_amount]
        for t in totals.order_by("category", "currency")
    ] == [
        ["amount_mismatch", "USD", 1, Decimal("19"), Decimal("20"), 0],
        # The report's 30 in its EUR; PGI's 30 in PGI's USD (the row counts nothing: the line is in EUR).
        ["currency_mismatch", "EUR", 1, Decimal("30"), Decimal("0"), 0],
        ["currency_mismatch", "USD", 0, Decimal("0"), Decimal("30"), 0],
        # A repeat is the gateway's money twice, never PGI's.
        ["duplicate", "USD", 1, Decimal("10"), Decimal("0"), 0],
        ["matched", "USD", 3, Decimal("64"), Decimal("64"), 0],  # 10 + 50 + the refund's 4
        ["missing_at_gateway", "USD", 2, Decimal("0"), Decimal("45"), 0],
        # A failed payment moved no money at PGI.
        ["status_mismatch", "USD", 1, Decimal("60"), Decimal("0"), 0],
        # The line's 70; the webhook's 7 in neither the report's sum nor PGI's.
        ["unknown_to_pgi", "USD", 2, Decimal("70"), Decimal("0"), Decimal("7")],
    ]
    assert_totals_invariant(run, outcome.report)
    # The exceptions are the totals' rows but matched, one for one.
    assert sum(t.count for t in totals if t.category != Category.MATCHED) == ReconciliationException.objects.filter(
        run=run, present=True
    ).count()


@pytest.mark.django_db
def test_a_reimport_of_the_same_file_is_recognized(day):
    first = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="a.csv", source="command", trigger="command"
    )
    again = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="renamed.csv", source="inbox", trigger="inbox"
    )

    assert first.report_created and not again.report_created
    assert again.report.pk == first.report.pk
    assert GatewayReport.objects.count() == 1 and GatewayReportLine.objects.count() == 8
    assert ReconciliationRun.objects.get().run_count == 2
    assert again.totals.by_category == first.totals.by_category
    assert report_content(first.report) == day["report"]


@pytest.mark.django_db
def test_a_rerun_keeps_resolutions_and_clears_what_is_gone(day, admin_user):
    first = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="a.csv", source="command", trigger="command"
    )
    unknown = ReconciliationException.objects.get(reference="payment:sim_unknown")
    duplicate = ReconciliationException.objects.get(category=Category.DUPLICATE)
    assert reconciliation_exceptions_resolve(
        exception_ids=[unknown.pk, duplicate.pk], resolution=Resolution.ESCALATED, note="asked the gateway",
        user=admin_user,
    ).resolved == 2  # fmt: skip

    reconciliation_run(gateway="simulator", day=DAY)  # the same report again

    unknown.refresh_from_db()
    assert (unknown.resolution, unknown.resolved_by, unknown.present) == (Resolution.ESCALATED, admin_user, True)
    assert ReconciliationException.objects.count() == first.run.exception_count == 8

    # A corrected report without the duplicate line: the resolved duplicate stays (not present);
    # the amount mismatch, open and now matched, is gone.
    p = day["payments"]
    corrected = day["report"].decode().splitlines(keepends=True)
    corrected = [row for i, row in enumerate(corrected) if i != 7]
    corrected[2] = line("capture", "sim_amount", p["amount"].id, "20.00")
    second = reconciliation_file_run(
        gateway="simulator", day=DAY, data="".join(corrected).encode(), name="b.csv", source="upload", trigger="upload"
    )

    assert second.report_created and second.run.pk == first.run.pk
    duplicate.refresh_from_db()
    assert (duplicate.resolution, duplicate.present) == (Resolution.ESCALATED, False)
    assert not ReconciliationException.objects.filter(category=Category.AMOUNT_MISMATCH).exists()
    assert second.run.exception_count == 6 and second.run.matched_count == 4


@pytest.mark.django_db
def test_resolving_needs_a_known_resolution_and_a_note(day, admin_user):
    reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="a.csv", source="command", trigger="command"
    )
    exc = ReconciliationException.objects.first()

    with pytest.raises(ValidationFailed) as bad:
        reconciliation_exceptions_resolve(exception_ids=[exc.pk], resolution="ignored", note="x", user=admin_user)
    assert bad.value.code == "INVALID_RESOLUTION"
    with pytest.raises(ValidationFailed) as empty:
        reconciliation_exceptions_resolve(exception_ids=[exc.pk], resolution="accepted", note=" ", user=admin_user)
    assert empty.value.code == "NOTE_REQUIRED"
    with pytest.raises(NotFound):
        reconciliation_exceptions_resolve(exception_ids=[0], resolution="accepted", note="n", user=admin_user)
    exc.refresh_from_db()
    assert exc.resolution == "" and exc.resolved_at is None

    assert reconciliation_exceptions_resolve(
        exception_ids=[exc.pk], resolution="written_off", note="small", user=admin_user
    ).resolved == 1
    # Resolving again changes nothing: the first resolution stands.
    assert reconciliation_exceptions_resolve(
        exception_ids=[exc.pk, 0, 999999], resolution="accepted", note="other", user=admin_user
    ) == ResolveOutcome(resolved=0, already_resolved=1, not_found=(0, 999999))
    exc.refresh_from_db()
    assert (exc.resolution, exc.resolution_note) == ("written_off", "small")


@pytest.mark.django_db
def test_a_file_pgi_cannot_read_is_refused_and_nothing_is_kept(merchant):
    with pytest.raises(ValidationFailed) as header:
        reconciliation_file_run(gateway="simulator", day=DAY, data=b"a,b\n1,2\n", name="x.csv", source="upload",
                                trigger="upload")  # fmt: skip
    assert header.value.code == "REPORT_FORMAT_UNKNOWN"
    bad_amount = HEADER + line("capture", "sim_x", "pay_x", "ten")
    with pytest.raises(ValidationFailed) as value:
        reconciliation_file_run(gateway="simulator", day=DAY, data=bad_amount.encode(), name="x.csv",
                                source="upload", trigger="upload")  # fmt: skip
    assert value.value.code == "REPORT_LINE_INVALID"
    with pytest.raises(ValidationFailed) as gateway:
        reconciliation_file_run(gateway="nowhere", day=DAY, data=HEADER.encode(), name="x.csv", source="upload",
                                trigger="upload")  # fmt: skip
    assert gateway.value.code == "UNKNOWN_GATEWAY"
    assert not GatewayReport.objects.exists() and not GatewayReportLine.objects.exists()


@pytest.mark.django_db
def test_fees_are_compared_with_settlements(day, merchant):
    p = day["payments"]["match"]
    batch = SettlementBatch.objects.create(
        merchant=merchant, currency="USD", cutoff=AT, status_changed_at=AT, payout_date=DAY, created_at=AT
    )
    SettlementLine.objects.create(
        batch=batch, kind=SettlementLineKind.PAYMENT, payment=p, amount=Decimal("10.00"), fee=Decimal("0.30"),
        net=Decimal("9.70"), occurred_at=AT,
    )  # fmt: skip

    outcome = reconciliation_file_run(
        gateway="simulator", day=DAY, data=day["report"], name="a.csv", source="command", trigger="command"
    )

    matched = ReconciliationTotal.objects.get(run=outcome.run, category=Category.MATCHED, currency="USD")
    assert (matched.pgi_fee, matched.fee_differences) == (Decimal("0.3000"), 1)
    assert matched.report_fee == Decimal("1.17")  # three lines at 0.39


@pytest.mark.django_db
def test_the_upload_and_the_selectors_finance_reads(day, admin_user):
    outcome = reconciliation_report_upload(
        gateway="simulator", day=DAY, name="simulator_2026-11-30.csv", content=day["report"], user=admin_user
    )
    assert outcome.report.uploaded_by == admin_user and outcome.run.triggered_by == admin_user.username

    runs = list(selectors.reconciliation_runs())
    assert [r.pk for r in runs] == [outcome.run.pk] and runs[0].open_exceptions == 8
    assert runs[0].totals_by_currency["USD"][Category.MATCHED]["count"] == 3

    assert selectors.reconciliation_exceptions(category=Category.DUPLICATE).count() == 1
    assert selectors.reconciliation_exceptions(currency="EUR").count() == 1
    assert selectors.reconciliation_exceptions(amount_min=Decimal("39"), amount_max=Decimal("41")).count() == 1
    assert selectors.reconciliation_exceptions(search="sim_unknown").count() == 1
    assert selectors.reconciliation_exceptions(search=day["payments"]["failed"].id).count() == 1
    reconciliation_exceptions_resolve(
        exception_ids=selectors.reconciliation_exceptions(category=Category.MISSING_AT_GATEWAY).values_list("pk", flat=True),
        resolution=Resolution.ACCEPTED, note="in tomorrow's report", user=admin_user,
    )  # fmt: skip
    assert selectors.reconciliation_exceptions(resolved=True).count() == 2
    assert selectors.reconciliation_exceptions(resolved=False).count() == 6

    ReconciliationException.objects.filter(category=Category.DUPLICATE).update(
        first_seen_at=timezone.now() - dt.timedelta(days=10)
    )
    overdue = selectors.reconciliation_exceptions(overdue=True)
    assert [e.category for e in overdue] == [Category.DUPLICATE] and overdue[0].overdue
    ages = {bucket.label: bucket.count for bucket in selectors.reconciliation_open_exceptions_by_age()}
    assert sum(ages.values()) == 6 and ages["over 7 days"] == 1


@pytest.mark.django_db
def test_the_file_is_kept_as_received_written_a_chunk_at_a_time(day, monkeypatch):
    from settlements.reconciliation import loading

    monkeypatch.setattr(loading._ContentWriter, "FLUSH", 64)  # many appends, not one
    monkeypatch.setattr(loading, "READ_CHUNK", 100)
    data = day["report"]  # read 100 bytes at a time

    outcome = reconciliation_file_run(
        gateway="simulator", day=DAY, data=data, name="a.csv", source="command", trigger="command"
    )

    assert report_content(outcome.report) == data
    assert outcome.report.size == len(data) and outcome.report.line_count == 8
    # Reports are read without their file unless it is asked for.
    assert "content" in GatewayReport.objects.get(pk=outcome.report.pk).get_deferred_fields()


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_file_at_once_load_it_once_and_run_one_after_the_other(merchant):
    import threading

    from django.db import connection

    day = crafted_day(merchant)
    barrier, errors, outcomes = threading.Barrier(2), [], []

    def upload():
        try:
            barrier.wait()
            outcomes.append(reconciliation_file_run(
                gateway="simulator", day=DAY, data=day["report"], name="a.csv", source="upload", trigger="upload"
            ))  # fmt: skip
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(outcome.report_created for outcome in outcomes) == [False, True]
    assert GatewayReport.objects.count() == 1 and GatewayReportLine.objects.count() == 8
    run = ReconciliationRun.objects.get()
    assert run.run_count == 2 and run.exception_count == 8
    assert ReconciliationException.objects.count() == 8
