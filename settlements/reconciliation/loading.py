"""Loading a gateway's report file: kept as received (gzip, sha256), its lines written set-based.

PostgreSQL: the lines go by COPY into a temporary staging table of text columns; one INSERT …
SELECT checks every value (_problem_sql: record type, currency, amounts against the currency's
digits, the day, sizes) and casts those that pass into GatewayReportLine in the same scan. When a
line was left out, _check_sql names the first bad one and the whole file fails with
REPORT_LINE_INVALID: nothing is kept.
The simulator's CSV and PGI's own line format are streamed to COPY as they are (the server parses
the CSV); Stripe's and Adyen's files are read row by row with the connectors' own parsing and
written to the same COPY. SQLite (`make run`) has no COPY: the same rows go by executemany in
chunks. Memory stays flat in the number of lines: the file is read, checked (UTF-8, no NUL) and
sent to COPY a megabyte at a time, never a line at a time nor whole, and stored compressed a few
megabytes at a time.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from gateways.adyen.report import report_line as adyen_report_line
from gateways.base import ReportLine
from gateways.simulator.report import REPORT_COLUMNS as SIMULATOR_COLUMNS
from pgi.errors import ValidationFailed

from .checks import (  # noqa: F401  (line_problem: the checks, imported from here by tests)
    _BLANK, _STAGE, AMOUNT_PATTERN, BOOKED_AT_PATTERN, FORMAT_KINDS, LINE_TABLE, MONEY_KINDS, _check_sql,
    _insert_sql, line_problem,
)
from .models import GatewayReport, LineKind, ReportFormat
from .timing import phase

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


# gzip's fastest level: at a million lines (96 MB) it compresses in about 0.7 s to 14.5 MB, where
# level 6 took 1.5 s for 12.3 MB; the kept file is read back rarely and whole.
COMPRESS_LEVEL = 1


def file_keep(report_id: int, source: bytes | BinaryIO | Path) -> None:
    """Store the file, gzip-compressed, as the report's content."""
    if connection.vendor == "sqlite":  # SQLite's || is text concatenation: the whole file at once
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as packed:
            for chunk in _chunks(source):
                packed.write(chunk)
        GatewayReport.objects.filter(pk=report_id).update(content=out.getvalue())
        return
    sink = _ContentWriter(report_id)
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as packed:
        for chunk in _chunks(source):
            packed.write(chunk)
    sink.flush()


def _text_blocks(source: bytes | BinaryIO | Path) -> Iterator[str]:
    """The file as text (UTF-8, a byte order mark dropped), a chunk of whole lines at a time (the
    last may lack its line break). Raises ValidationFailed (REPORT_LINE_INVALID, naming the line)
    for bytes that are not UTF-8 or a NUL. Checked a chunk at a time, never a line at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending, number = "", 0
    for chunk in _chunks(source):
        try:
            text = pending + decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            # The line of the bad byte: those complete before it, plus the one it is in.
            good = pending + chunk[: exc.start].decode("utf-8", errors="replace")
            raise ValidationFailed(
                f"Report line {number + good.count(chr(10)) + 1} is not UTF-8 text.", code="REPORT_LINE_INVALID"
            ) from exc
        if "\x00" in text:
            raise ValidationFailed(
                f"Report line {number + text[: text.index(chr(0))].count(chr(10)) + 1} holds a NUL byte.",
                code="REPORT_LINE_INVALID",
            )
        cut = text.rfind("\n") + 1
        block, pending = text[:cut], text[cut:]
        if block:
            number += block.count("\n")
            yield block
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"Report line {number + 1} is not UTF-8 text.", code="REPORT_LINE_INVALID") from exc
    if pending:
        yield pending


def _block_lines(blocks: Iterable[str]) -> Iterator[str]:
    """The lines of _text_blocks' chunks, each with its line break (the file's last may have none)."""
    for block in blocks:
        *complete, rest = block.split("\n")
        for line in complete:
            yield line + "\n"
        if rest:
            yield rest


def _text_lines(source: bytes | BinaryIO | Path) -> Iterator[str]:
    """The file as text lines (_text_blocks' checks)."""
    return _block_lines(_text_blocks(source))


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

REPORT_TABLE = GatewayReport._meta.db_table
_COPY_LINE = re.compile(r"\bline (\d+)")


def _copy_error(exc: Exception, streamed: bool) -> ValidationFailed:
    """A COPY or cast error as REPORT_LINE_INVALID, naming the file's line when the server says it."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    diag = getattr(cause, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]).rstrip(".")
    if message.startswith("extra data after last expected column"):
        message = "a field too many (a value holding a comma, such as 1,000.00, must be quoted)"
    elif message.startswith("missing data for column"):
        message = f"a field too few ({message})"
    found = _COPY_LINE.search(getattr(diag, "context", None) or "")
    if found and streamed:  # COPY's line 1 is the file's line 2 (the header is not sent)
        return ValidationFailed(f"Report line {int(found[1]) + 1} cannot be read: {message}.", code="REPORT_LINE_INVALID")
    return ValidationFailed(f"The report cannot be loaded: {message}.", code="REPORT_LINE_INVALID")


_BLANK_LINE = re.compile(r"^[^\S\n]*\n", re.MULTILINE)  # a line of white space only (str.isspace)


def _blanks_marked(block: str, blank_row: str) -> tuple[str, int]:
    """The block with each blank line replaced by blank_row (COPY refuses an empty row), and how many."""
    block, blanks = _BLANK_LINE.subn(blank_row, block)
    cut = block.rfind("\n") + 1
    if cut < len(block) and not block[cut:].strip():  # the file's last line, without its line break
        block, blanks = block[:cut] + blank_row, blanks + 1
    return block, blanks


def _copy_postgresql(report_id: int, fmt: str, blocks: Iterator[str], header: list[str], gateway: str,
                     progress: Callable[[int], None] | None, day: dt.date) -> int:  # fmt: skip
    chunk_lines = settings.PGI_RECONCILIATION["chunk_lines"]
    streamed = fmt in (ReportFormat.SIMULATOR, ReportFormat.PGI)
    blank_row = ",".join([f'"{_BLANK}"', *[""] * (len(PGI_COLUMNS) - 1)]) + "\n"
    params = {
        "report": report_id, "kinds": list(FORMAT_KINDS[fmt]), "kinds_text": ", ".join(FORMAT_KINDS[fmt]),
        "money_kinds": list(MONEY_KINDS), "amount_pattern": AMOUNT_PATTERN, "booked_pattern": BOOKED_AT_PATTERN,
        "day": day, "day_text": day.isoformat(), "blank": _BLANK,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        # Text columns: the server parses the CSV; _insert_sql checks every value and casts those
        # that pass into the report's lines in the same scan; when one is left out, _check_sql names
        # the first bad line and the file is refused.
        # n numbers the rows in COPY order (a sequence, one nextval per row as they arrive): the
        # line number of a file streamed as it is (a blank line is staged as a marked row and
        # skipped, so the numbers hold); files read row by row give theirs (source_line).
        # A temporary table: no write-ahead log (the kept file is the evidence).
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGE} (n bigint GENERATED ALWAYS AS IDENTITY, source_line bigint, "
            + ", ".join(f"{name} text" for name in PGI_COLUMNS)
            + ") ON COMMIT DROP"
        )
        columns = ", ".join(PGI_COLUMNS)
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        staged = 0  # lines staged, blank ones not counted
        try:
            with phase("COPY into staging"):
                if streamed:
                    # The file goes to COPY as it is, a chunk of whole lines (about a megabyte) per write.
                    with raw.copy(f"COPY {_STAGE} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                        count = 0
                        for block in blocks:
                            marked, blanks = _blanks_marked(block, blank_row)
                            copy.write(marked)
                            count += block.count("\n")
                            staged -= blanks
                            if progress:
                                progress(count)
                    staged += raw.rowcount
                else:
                    # Rows read by PGI (some skipped): each keeps its line number in the file.
                    with raw.copy(f"COPY {_STAGE} (source_line, {columns}) FROM STDIN") as copy:
                        rows = _csv_rows(fmt, _block_lines(blocks), header, gateway)
                        for staged, (number, row) in enumerate(rows, start=1):
                            copy.write_row([number, *row])
                            if progress and staged % chunk_lines == 0:
                                progress(staged)
            with phase("lines checked and inserted"):
                cursor.execute(_insert_sql(), params)
                count = cursor.rowcount
            if count != staged:
                cursor.execute(_check_sql(), params)
                bad = cursor.fetchone()
                if bad is None:  # cannot be: every staged line either passed or has a problem
                    raise ValidationFailed("The report cannot be loaded.", code="REPORT_LINE_INVALID")
                raise ValidationFailed(f"Report line {bad[0]} cannot be read: {bad[1]}.", code="REPORT_LINE_INVALID")
        except (DatabaseError, psycopg.Error) as exc:
            # Bad CSV (a field too many or too few, quoting) or a value that does not cast: refused.
            raise _copy_error(exc, streamed) from exc
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGE}")
    return count


def _parse_row(number: int, fmt: str, row: list[str], day: dt.date) -> tuple:
    if problem := line_problem(fmt, row, day):
        raise ValidationFailed(f"Report line {number} cannot be read: {problem}.", code="REPORT_LINE_INVALID")
    kind, reference, payment_id, refund_id, amount, currency, fee, booked_at, status = row
    moment = dt.datetime.fromisoformat(booked_at.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (
        KIND_WORDS[kind.strip().lower()], reference, payment_id, refund_id,
        str(Decimal(amount)), currency.strip().upper(), str(Decimal(fee)) if fee else None,
        connection.ops.adapt_datetimefield_value(moment), status,
    )  # fmt: skip


def _insert_batches(report_id: int, fmt: str, blocks: Iterator[str], header: list[str], gateway: str,
                    progress: Callable[[int], None] | None, day: dt.date) -> int:  # fmt: skip
    """SQLite: the rows by executemany, chunk_lines at a time (checked as _problem_sql checks them)."""
    chunk_lines = settings.PGI_RECONCILIATION["chunk_lines"]
    sql = (
        f"INSERT INTO {LINE_TABLE} (report_id, line_no, kind, gateway_reference, payment_id, refund_id, amount,"
        " currency, fee, booked_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    count, batch = 0, []
    with connection.cursor() as cursor:
        for number, row in _csv_rows(fmt, _block_lines(blocks), header, gateway):
            batch.append((report_id, number, *_parse_row(number, fmt, row, day)))
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
    """`<gateway>_<YYYY-MM-DD>….csv` → (gateway, day), the gateway in lower case; None for another name."""
    match = _DAY_IN_NAME.match(Path(name).name)
    if not match:
        return None
    try:
        return match["gateway"].lower(), dt.date.fromisoformat(match["day"])
    except ValueError:
        return None


def _chosen(report: GatewayReport) -> GatewayReport:
    """A file imported again is its day's current report again (current_report)."""
    report.chosen_at = timezone.now()
    GatewayReport.objects.filter(pk=report.pk).update(chosen_at=report.chosen_at)
    return report


def current_report(*, gateway: str, day: dt.date) -> GatewayReport | None:
    """The day's current report: the one loaded, or imported again, last (chosen_at)."""
    return (
        GatewayReport.objects.filter(gateway=gateway, day=day)
        .order_by(F("chosen_at").desc(nulls_last=True), "-created_at", "-id")
        .first()
    )


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
    with phase("hash"):
        sha256, size = file_sha256(data)
    found = GatewayReport.objects.filter(gateway=gateway, day=day, sha256=sha256).first()
    if found is not None:
        return LoadOutcome(report=_chosen(found), created=False)
    blocks = _text_blocks(data)
    first, newline, rest = next(blocks, "").partition("\n")
    header = next(csv.reader([first + newline]), [])
    blocks = itertools.chain([rest] if rest else [], blocks)  # the lines below the header
    fmt = report_format(header)
    try:
        with transaction.atomic():
            report = GatewayReport.objects.create(
                gateway=gateway, day=day, name=name[:255], format=fmt, source=source, content=b"", size=size,
                sha256=sha256, uploaded_by=uploaded_by, chosen_at=timezone.now(),
            )  # fmt: skip
            with phase("file kept (compressed)"):
                file_keep(report.pk, data)
            load = _insert_batches if connection.vendor == "sqlite" else _copy_postgresql
            with phase("lines loaded"):
                report.line_count = load(report.pk, fmt, blocks, [h.strip() for h in header], gateway, progress, day)
            report.save(update_fields=["line_count"])
    except IntegrityError:
        # The same file loaded at the same moment by another process: theirs is the report.
        found = GatewayReport.objects.filter(gateway=gateway, day=day, sha256=sha256).first()
        if found is None:
            raise
        return LoadOutcome(report=_chosen(found), created=False)
    return LoadOutcome(report=report, created=True)


def report_content(report: GatewayReport) -> bytes:
    """The file as received."""
    content = GatewayReport.objects.filter(pk=report.pk).values_list("content", flat=True).get()
    return gzip.decompress(bytes(content))
