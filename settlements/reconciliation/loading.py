"""Loading a gateway's report file: kept as received (gzip, sha256), its lines written set-based.

PostgreSQL: the lines go by COPY into a temporary staging table of text columns, then one
INSERT … SELECT casts them into GatewayReportLine (a bad value fails the whole file, nothing kept).
The simulator's CSV and PGI's own line format are streamed to COPY as they are (the server parses
the CSV); Stripe's and Adyen's files are read row by row with the connectors' own parsing and
written to the same COPY. SQLite (`make run`) has no COPY: the same rows go by executemany in
chunks. Memory stays flat in the number of lines: the file is read in chunks, never held whole
(except the compressed copy that is stored).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

from gateways.adyen.report import report_line as adyen_report_line
from gateways.base import ReportLine
from gateways.simulator.report import REPORT_COLUMNS as SIMULATOR_COLUMNS
from pgi.errors import ValidationFailed

from .models import GatewayReport, GatewayReportLine, LineKind, ReportFormat

# PGI's own line format: gateways.base.ReportLine's fields in the simulator's column order. Reports
# that a connector returns as lines (Stripe's API, Adyen's download) are kept in this format.
PGI_COLUMNS = (
    "kind", "gateway_reference", "payment_id", "refund_id", "amount", "currency", "fee", "booked_at", "status",
)  # fmt: skip
# The columns of Stripe's itemized balance change report (balance_change_from_activity.itemized.*)
# that PGI reads; others are ignored. Amounts are in major units; refunds are negative.
STRIPE_REQUIRED = ("balance_transaction_id", "created_utc", "currency", "gross", "fee", "reporting_category")
STRIPE_KINDS = {
    "charge": LineKind.PAYMENT,
    "payment": LineKind.PAYMENT,
    "refund": LineKind.REFUND,
    "partial_capture_reversal": LineKind.OTHER,
    "dispute": LineKind.CHARGEBACK,
    "dispute_reversal": LineKind.OTHER,
    "fee": LineKind.FEE,
}
ADYEN_REQUIRED = ("Psp Reference", "Record Type", "Booking Date")
# What the simulator's record types and PGI's kinds mean as GatewayReportLine.kind.
KIND_WORDS = {"capture": LineKind.PAYMENT, **{kind.value: kind for kind in LineKind}}
READ_CHUNK = 1 << 20  # bytes


@dataclass(frozen=True)
class LoadOutcome:
    report: GatewayReport
    created: bool  # False: the same file for the same gateway and day was loaded before


def _chunks(source: bytes | BinaryIO | Path) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        for start in range(0, len(view), READ_CHUNK):
            yield bytes(view[start : start + READ_CHUNK])
        return
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            yield from iter(lambda: handle.read(READ_CHUNK), b"")
        return
    source.seek(0)
    yield from iter(lambda: source.read(READ_CHUNK), b"")


def file_sha256(source: bytes | BinaryIO | Path) -> tuple[str, int]:
    """The SHA-256 and size of the file's bytes as received."""
    digest, size = hashlib.sha256(), 0
    for chunk in _chunks(source):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class _ContentWriter:
    """A file-like sink for gzip that appends to the report's stored content every few megabytes
    (PostgreSQL: content || chunk), so the compressed file is never held whole in memory."""

    FLUSH = 4 << 20

    def __init__(self, report_id: int):
        self.report_id, self.buffer = report_id, bytearray()

    def write(self, data) -> int:
        self.buffer += data
        if len(self.buffer) >= self.FLUSH:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {REPORT_TABLE} SET content = content || %s WHERE id = %s", [bytes(self.buffer), self.report_id]
                )
            self.buffer = bytearray()


def file_keep(report_id: int, source: bytes | BinaryIO | Path) -> None:
    """Store the file, gzip-compressed, as the report's content."""
    if connection.vendor == "sqlite":  # SQLite's || is text concatenation: the whole file at once
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as packed:
            for chunk in _chunks(source):
                packed.write(chunk)
        GatewayReport.objects.filter(pk=report_id).update(content=out.getvalue())
        return
    sink = _ContentWriter(report_id)
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as packed:
        for chunk in _chunks(source):
            packed.write(chunk)
    sink.flush()


def _text_lines(source: bytes | BinaryIO | Path) -> Iterator[str]:
    """The file as text lines (UTF-8, a byte order mark dropped), read a chunk at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    try:
        for chunk in _chunks(source):
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"The report is not UTF-8 text: {exc}.", code="REPORT_UNREADABLE") from exc
    if pending:
        yield pending


def report_format(header: list[str]) -> str:
    """The format of a report from its header row; raises ValidationFailed when PGI reads none."""
    names = tuple(name.strip() for name in header)
    if names == SIMULATOR_COLUMNS:
        return ReportFormat.SIMULATOR
    if names == PGI_COLUMNS:
        return ReportFormat.PGI
    if set(STRIPE_REQUIRED) <= set(names):
        return ReportFormat.STRIPE
    if set(ADYEN_REQUIRED) <= set(names):
        return ReportFormat.ADYEN
    raise ValidationFailed(
        "The report's header is none PGI reads: the simulator's, PGI's report lines, Stripe's itemized"
        " balance change report or Adyen's payments accounting report (docs/08-batch-processing.md).",
        code="REPORT_FORMAT_UNKNOWN",
    )


# --- rows of the normalized columns (PGI_COLUMNS), as text -----------------------------------------


def _line_row(line: ReportLine) -> list[str]:
    return [
        str(line.kind), line.gateway_reference, line.payment_id, line.refund_id, str(line.amount), line.currency,
        "" if line.fee is None else str(line.fee), line.booked_at.astimezone(dt.UTC).isoformat(), line.status,
    ]  # fmt: skip


def _stripe_row(row: dict[str, str]) -> list[str]:
    category = (row.get("reporting_category") or "").strip()
    kind = STRIPE_KINDS.get(category, LineKind.OTHER)
    source_id = (row.get("source_id") or "").strip()
    intent_id = (row.get("payment_intent_id") or "").strip()
    if kind in (LineKind.PAYMENT, LineKind.CHARGEBACK):
        reference = intent_id or source_id or row["balance_transaction_id"]
    else:
        reference = source_id or row["balance_transaction_id"]
    created = dt.datetime.fromisoformat(row["created_utc"].strip()).replace(tzinfo=dt.UTC)
    return [
        kind, reference, (row.get("payment_metadata[pgi_payment_id]") or "").strip(),
        (row.get("refund_metadata[pgi_refund_id]") or "").strip() if kind == LineKind.REFUND else "",
        str(abs(Decimal(row["gross"]))), row["currency"].strip().upper(), str(abs(Decimal(row["fee"] or "0"))),
        created.isoformat(), category,
    ]  # fmt: skip


def _csv_rows(fmt: str, lines: Iterator[str], header: list[str], gateway: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, the row in PGI_COLUMNS) for every line below the header. Raises
    ValidationFailed naming the first line PGI cannot read."""
    from gateways.registry import UnknownGateway, get_connector

    merchant_account = None
    if fmt == ReportFormat.ADYEN:
        try:
            merchant_account = getattr(get_connector(gateway), "merchant_account", None)
        except UnknownGateway:
            merchant_account = None
    reader = csv.reader(lines)
    for number, values in enumerate(reader, start=2):
        if not values:
            continue
        try:
            if fmt in (ReportFormat.SIMULATOR, ReportFormat.PGI):
                if len(values) != len(PGI_COLUMNS):
                    raise ValueError(f"{len(values)} fields, not {len(PGI_COLUMNS)}")
                yield number, values
            elif fmt == ReportFormat.STRIPE:
                yield number, _stripe_row(dict(zip(header, values)))
            else:
                row = dict(zip(header, values))
                line = adyen_report_line(row, merchant_account=merchant_account or row.get("Merchant Account") or "")
                if line is not None:
                    yield number, _line_row(line)
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise ValidationFailed(f"Report line {number} cannot be read: {exc}.", code="REPORT_LINE_INVALID") from exc


def lines_csv(lines: Iterable[ReportLine]) -> bytes:
    """Report lines (a connector's fetch_report) as a file in PGI's line format."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PGI_COLUMNS)
    writer.writerows(_line_row(line) for line in lines)
    return out.getvalue().encode()


# --- writing the lines ---------------------------------------------------------------------------

LINE_TABLE = GatewayReportLine._meta.db_table
REPORT_TABLE = GatewayReport._meta.db_table
_STAGE = "recon_stage"
_CAST = (
    "SELECT %(report)s, COALESCE(source_line, n + 1),"
    " CASE lower(COALESCE(kind, '')) WHEN 'capture' THEN 'payment' WHEN 'payment' THEN 'payment' WHEN 'refund' THEN 'refund'"
    "  WHEN 'chargeback' THEN 'chargeback' WHEN 'fee' THEN 'fee' ELSE 'other' END,"
    " COALESCE(gateway_reference, ''), COALESCE(payment_id, ''), COALESCE(refund_id, ''), amount::numeric,"
    " upper(currency), NULLIF(fee, '')::numeric, booked_at::timestamptz, COALESCE(left(status, 32), '')"
    f" FROM {_STAGE}"
)


def _copy_postgresql(report_id: int, fmt: str, lines: Iterator[str], header: list[str], gateway: str,
                     progress: Callable[[int], None] | None) -> int:  # fmt: skip
    chunk_lines = settings.PGI_RECONCILIATION["chunk_lines"]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        # Text columns: the server parses the CSV, the INSERT below casts (one error names the file).
        # n numbers the rows in COPY order (a sequence, one nextval per row as they arrive): the
        # line number of a file streamed as it is; files read row by row give theirs (source_line).
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGE} (n bigint GENERATED ALWAYS AS IDENTITY, source_line bigint, "
            + ", ".join(f"{name} text" for name in PGI_COLUMNS)
            + ") ON COMMIT DROP"
        )
        columns = ", ".join(PGI_COLUMNS)
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        try:
            if fmt in (ReportFormat.SIMULATOR, ReportFormat.PGI):
                # The file goes to COPY as it is, a chunk of lines per write.
                with raw.copy(f"COPY {_STAGE} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                    buffer, count = [], 0
                    for line in lines:
                        buffer.append(line)
                        if len(buffer) >= chunk_lines:
                            copy.write("".join(buffer))
                            count += len(buffer)
                            buffer = []
                            if progress:
                                progress(count)
                    copy.write("".join(buffer))
            else:
                # Rows read by PGI (some skipped): each keeps its line number in the file.
                with raw.copy(f"COPY {_STAGE} (source_line, {columns}) FROM STDIN") as copy:
                    for count, (number, row) in enumerate(_csv_rows(fmt, lines, header, gateway), start=1):
                        copy.write_row([number, *row])
                        if progress and count % chunk_lines == 0:
                            progress(count)
            cursor.execute(
                f"INSERT INTO {LINE_TABLE} (report_id, line_no, kind, gateway_reference, payment_id, refund_id,"
                f" amount, currency, fee, booked_at, status) {_CAST}",
                {"report": report_id},
            )
        except DatabaseError as exc:
            # Bad CSV (field count, quoting) or a value that does not cast: the file is refused.
            message = str(exc).strip().splitlines()[0]
            raise ValidationFailed(f"The report cannot be loaded: {message}.", code="REPORT_LINE_INVALID") from exc
        count = cursor.rowcount
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGE}")
    return count


def _parse_row(number: int, row: list[str]) -> tuple:
    kind, reference, payment_id, refund_id, amount, currency, fee, booked_at, status = row
    try:
        moment = dt.datetime.fromisoformat(booked_at.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return (
            KIND_WORDS.get(kind.strip().lower(), LineKind.OTHER), reference, payment_id, refund_id,
            str(Decimal(amount)), currency.strip().upper(), str(Decimal(fee)) if fee.strip() else None,
            connection.ops.adapt_datetimefield_value(moment), status[:32],
        )  # fmt: skip
    except (ValueError, InvalidOperation) as exc:
        raise ValidationFailed(f"Report line {number} cannot be read: {exc}.", code="REPORT_LINE_INVALID") from exc


def _insert_batches(report_id: int, fmt: str, lines: Iterator[str], header: list[str], gateway: str,
                    progress: Callable[[int], None] | None) -> int:  # fmt: skip
    """SQLite: the rows by executemany, chunk_lines at a time."""
    chunk_lines = settings.PGI_RECONCILIATION["chunk_lines"]
    sql = (
        f"INSERT INTO {LINE_TABLE} (report_id, line_no, kind, gateway_reference, payment_id, refund_id, amount,"
        " currency, fee, booked_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    count, batch = 0, []
    with connection.cursor() as cursor:
        for number, row in _csv_rows(fmt, lines, header, gateway):
            batch.append((report_id, number, *_parse_row(number, row)))
            if len(batch) >= chunk_lines:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
                if progress:
                    progress(count)
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


_DAY_IN_NAME = re.compile(r"^(?P<gateway>.+?)[_.-](?P<day>\d{4}-\d{2}-\d{2})(?:[^0-9].*)?$")


def inbox_name_parse(name: str) -> tuple[str, dt.date] | None:
    """`<gateway>_<YYYY-MM-DD>….csv` → (gateway, day); None for another name."""
    match = _DAY_IN_NAME.match(Path(name).name)
    if not match:
        return None
    try:
        return match["gateway"], dt.date.fromisoformat(match["day"])
    except ValueError:
        return None


def report_load(
    *,
    gateway: str,
    day: dt.date,
    source: str,
    name: str,
    data: bytes | BinaryIO | Path,
    uploaded_by=None,
    progress: Callable[[int], None] | None = None,
) -> LoadOutcome:
    """Keep the file and load its lines; the same bytes for the same gateway and day find the report
    loaded before (created=False) and load nothing. Raises ValidationFailed for a file PGI cannot
    read (an unknown header, a line that does not parse): then nothing is kept."""
    # The hash first (fast): a file loaded before is neither compressed nor read again.
    sha256, size = file_sha256(data)
    found = GatewayReport.objects.filter(gateway=gateway, day=day, sha256=sha256).first()
    if found is not None:
        return LoadOutcome(report=found, created=False)
    lines = _text_lines(data)
    first = next(lines, "")
    header = next(csv.reader([first]), [])
    fmt = report_format(header)
    try:
        with transaction.atomic():
            report = GatewayReport.objects.create(
                gateway=gateway, day=day, name=name[:255], format=fmt, source=source, content=b"", size=size,
                sha256=sha256, uploaded_by=uploaded_by,
            )  # fmt: skip
            file_keep(report.pk, data)
            load = _insert_batches if connection.vendor == "sqlite" else _copy_postgresql
            report.line_count = load(report.pk, fmt, lines, [h.strip() for h in header], gateway, progress)
            report.save(update_fields=["line_count"])
    except IntegrityError:
        # The same file loaded at the same moment by another process: theirs is the report.
        found = GatewayReport.objects.filter(gateway=gateway, day=day, sha256=sha256).first()
        if found is None:
            raise
        return LoadOutcome(report=found, created=False)
    return LoadOutcome(report=report, created=True)


def report_content(report: GatewayReport) -> bytes:
    """The file as received."""
    content = GatewayReport.objects.filter(pk=report.pk).values_list("content", flat=True).get()
    return gzip.decompress(bytes(content))
