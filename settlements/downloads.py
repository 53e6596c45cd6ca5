"""Files that staff and finance download: payout files as stored, and CSV tables streamed.

Used by the admin and by the finance UI alike, so both serve the same bytes. A CSV is written row by
row from an iterator (a server-side cursor for large tables): a million rows never sit in memory.
"""

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from django.http import HttpResponse, StreamingHttpResponse

from pgi.admin_format import instant, spreadsheet_safe
from pgi.money import quantize

from .models import PayoutFile, SettlementBatch
from .reconciliation.loading import report_content
from .reconciliation.models import GatewayReport
from .selectors import (
    PAYOUT_FILE_CONTENT_TYPES,
    STATEMENT_COLUMNS,
    settlement_statement_rows,
)


def payout_file_response(file: PayoutFile) -> HttpResponse:
    """A payout file as stored, byte for byte, as an attachment with its sha256 in a header."""
    response = HttpResponse(bytes(file.content), content_type=PAYOUT_FILE_CONTENT_TYPES[file.kind])
    response["Content-Disposition"] = f'attachment; filename="{file.name}"'
    response["X-Content-SHA256"] = file.sha256
    return response


def gateway_report_response(report: GatewayReport) -> HttpResponse:
    """A gateway's report as received, byte for byte, under a safe name, with its sha256 in a header."""
    response = HttpResponse(report_content(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{report.download_name}"'
    response["X-Content-SHA256"] = report.sha256
    return response


class _Echo:
    """csv.writer's file: hands each written row back instead of keeping it."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value) -> str:
    """A value as CSV text. Numbers are exact decimal text as PGI wrote them (a negative net stays
    -1.00, a number); instants ISO 8601 UTC; every other text goes through spreadsheet_safe, so a
    cell starting with = + - @ is shown, never evaluated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, int)):
        return str(value)
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, date):
        return value.isoformat()
    return spreadsheet_safe(str(value))


def csv_rows(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The CSV text, one row at a time: UTF-8, comma, every cell quoted, CRLF."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def csv_response(filename: str, header: Iterable[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """A streamed CSV attachment. `rows` is consumed only as the response is sent."""
    response = StreamingHttpResponse(csv_rows(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # payment data
    return response


def statement_csv_response(batch: SettlementBatch) -> StreamingHttpResponse:
    """The batch's lines (the merchant statement), amounts with the currency's digits."""

    def rows():
        for kind, payment, refund, carried, amount, fee, net, at in settlement_statement_rows(batch=batch):
            yield [kind, payment, refund, carried, *(quantize(v, batch.currency) for v in (amount, fee, net)), at]

    return csv_response(f"{batch.id}-statement.csv", STATEMENT_COLUMNS, rows())
