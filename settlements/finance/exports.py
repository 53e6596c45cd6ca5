"""The CSV export of each table of the finance UI: its columns and its rows, streamed through
settlements.downloads.csv_response (every cell quoted, text guarded against spreadsheet formulas,
amounts exact with the currency's digits)."""

import datetime as dt

from django.db.models import F
from django.http import StreamingHttpResponse

from pgi.money import quantize
from settlements.downloads import csv_response

from .selectors import NO_ROUTE, PaymentFigures, SettlementTotal

CHUNK = 2000  # rows per fetch from the server-side cursor

FIGURE_COLUMNS = ("gateway", "currency", "payments", "accepted", "failed", "no_answer_yet", "success_rate_percent", "charged")


def figures_csv(name: str, rows) -> StreamingHttpResponse:
    return csv_response(
        f"{name}.csv",
        FIGURE_COLUMNS,
        ([r.gateway or NO_ROUTE, r.currency, r.payments, r.accepted, r.failed, r.open, r.success_rate, r.charged] for r in rows),
    )


def daily_csv(figures: PaymentFigures) -> StreamingHttpResponse:
    rows = [("all", figures.daily)] + list(figures.daily_by_gateway.items())
    return csv_response(
        f"payments-daily-{figures.today.isoformat()}.csv",
        ("gateway", "day", "payments", "accepted", "failed", "no_answer_yet", "success_rate_percent"),
        ([gateway, d.day, d.payments, d.accepted, d.failed, d.open, d.success_rate] for gateway, days in rows for d in days),
    )


def settlement_totals_csv(name: str, totals: list[SettlementTotal]) -> StreamingHttpResponse:
    return csv_response(
        f"{name}.csv", ("payout_status", "currency", "batches", "net"), ([t.status, t.currency, t.batches, t.net] for t in totals)
    )


BATCH_COLUMNS = (
    "id", "merchant", "currency", "cutoff", "status", "gross", "refunds", "fees", "carried", "net", "payments",
    "refund_lines", "payout_date",
)


def batches_csv(queryset, today: dt.date) -> StreamingHttpResponse:
    """The filtered batch list, all of it, read in chunks through a server-side cursor."""
    values = queryset.values_list(
        "id", F("merchant__code"), "currency", "cutoff", "status", "gross_amount", "refund_amount", "fee_amount",
        "carried_amount", "net_amount", "payment_count", "refund_count", "payout_date",
    )

    def rows():
        for row in values.iterator(chunk_size=CHUNK):
            currency = row[2]
            yield [*row[:5], *(quantize(v, currency) for v in row[5:10]), *row[10:]]

    return csv_response(f"settlement-batches-{today.isoformat()}.csv", BATCH_COLUMNS, rows())


RUN_COLUMNS = ("run_id", "day", "gateway", "status", "report_lines", "pgi_operations", "matched", "exceptions", "open", "overdue")


def runs_csv(runs, categories, counts_of, today: dt.date) -> StreamingHttpResponse:
    """The runs with their count per exception category (from each run's prefetched totals)."""

    def rows():
        for run in runs:
            counts = counts_of(run)
            yield [
                run.pk, run.day, run.gateway, run.status, run.line_count, run.operation_count, run.matched_count,
                run.exception_count, run.open_exceptions, run.overdue_exceptions, *(counts.get(c, 0) for c in categories),
            ]

    return csv_response(f"reconciliation-runs-{today.isoformat()}.csv", (*RUN_COLUMNS, *categories), rows())


EXCEPTION_COLUMNS = (
    "id", "day", "gateway", "category", "reference", "currency", "amount", "report_amount", "report_currency",
    "pgi_amount", "pgi_currency", "report_status", "pgi_status", "payment_id", "refund_id", "gateway_reference",
    "detail", "first_seen_at", "overdue", "resolution", "resolution_note", "resolved_by", "resolved_at",
    "report_payment_id", "report_refund_id",
)


def exceptions_csv(name: str, exceptions) -> StreamingHttpResponse:
    """Every exception the filters select, read in chunks through a server-side cursor."""
    values = exceptions.values_list(
        "id", "day", "gateway", "category", "reference", "currency", "amount", "report_amount", "report_currency",
        "pgi_amount", "pgi_currency", "report_status", "pgi_status", "payment_id", "refund_id", "gateway_reference",
        "detail", "first_seen_at", "overdue", "resolution", "resolution_note", F("resolved_by__username"), "resolved_at",
        "report_payment_id", "report_refund_id",
    )

    def rows():
        for row in values.iterator(chunk_size=CHUNK):
            row = list(row)
            row[6] = quantize(row[6], row[5])
            if row[7] is not None and row[8]:
                row[7] = quantize(row[7], row[8])
            if row[9] is not None and row[10]:
                row[9] = quantize(row[9], row[10])
            yield row

    return csv_response(f"{name}.csv", EXCEPTION_COLUMNS, rows())


def reconciliation_days_csv(name: str, grid: list[dict]) -> StreamingHttpResponse:
    def rows():
        for row in grid:
            for cell in row["cells"]:
                run = cell["run"]
                yield [row["gateway"], cell["day"], cell["state"], run.status if run else "", run.pk if run else "",
                       run.matched_count if run else "", run.exception_count if run else "",
                       run.has_open if run else "", run.has_overdue if run else ""]

    columns = ("gateway", "day", "state", "run_status", "run_id", "matched", "exceptions", "some_open", "some_overdue")
    return csv_response(f"{name}.csv", columns, rows())


def ages_csv(name: str, ages) -> StreamingHttpResponse:
    return csv_response(f"{name}.csv", ("age", "open", "overdue"), ([b.label, b.count, b.overdue] for b in ages))
