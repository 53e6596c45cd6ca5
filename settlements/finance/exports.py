"""The CSV export of each table of the finance UI: its columns and its rows, streamed through
settlements.downloads.csv_response (every cell quoted, text guarded against spreadsheet formulas,
amounts exact with the currency's digits)."""

import datetime as dt

from django.db.models import F
from django.http import StreamingHttpResponse

from pgi.money import quantize
from settlements.downloads import csv_response

from .selectors import PaymentFigures, SettlementTotal

CHUNK = 2000  # rows per fetch from the server-side cursor

FIGURE_COLUMNS = ("gateway", "currency", "payments", "accepted", "failed", "no_answer_yet", "success_rate_percent", "charged")


def figures_csv(name: str, rows) -> StreamingHttpResponse:
    return csv_response(
        f"{name}.csv",
        FIGURE_COLUMNS,
        ([r.gateway, r.currency, r.payments, r.accepted, r.failed, r.open, r.success_rate, r.charged] for r in rows),
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
