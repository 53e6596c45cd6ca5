"""Bulk refund files: a CSV of refunds that staff upload, accepted whole or rejected whole.

Every row is checked before anything is written, against the payments locked in id order (the lock
a single refund takes, so what remains refundable cannot move underneath): one error rejects the
file, with a report of every error (row, column, code, error). An accepted file's refunds are
written set-based and left Pending with their operation due now, for the batch job
(refunds_process) to send. Format and rules for staff: docs/08-batch-processing.md.
"""

import csv
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.db.models.functions import Collate
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from payments.models import GatewayOperation, OperationKind, Payment
from pgi.admin_format import instant, spreadsheet_safe
from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.cards import REFUSAL_CODE, has_card_number
from pgi.errors import BusinessRuleViolation
from pgi.ids import is_id
from pgi.money import currency_exponent, fits_currency, is_storable_amount, quantize
from pgi.text import clip

from .models import Refund, RefundFile, RefundSource, RefundStatus, RefundStatusChange, new_refund_id
from .services import REFUNDABLE
from .signals import refunds_received_in_bulk

MAX_FILE_BYTES = 20 * 1024 * 1024
REQUIRED_COLUMNS = ("payment_id", "amount", "reason")
KEY_COLUMN = "idempotency_key"
REASON_MAX = Refund._meta.get_field("reason").max_length
KEY_MAX = Refund._meta.get_field("bulk_key").max_length
BATCH = 2000  # rows per INSERT, ids per lookup
AMOUNT_SHAPE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
REPORT_HEADER = ("row", "column", "code", "error")


class RefundFileRefused(BusinessRuleViolation):
    """The file is not taken at all (too large, or the same content was accepted before): nothing
    is recorded. Codes: REFUND_FILE_TOO_LARGE, REFUND_FILE_DUPLICATE, REFUND_FILE_CONFLICT."""


@dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    code: str
    error: str


@dataclass
class Row:
    number: int
    payment_id: str
    amount: Decimal | None
    reason: str
    key: str


@dataclass(frozen=True)
class Held:
    """What a locked payment says for its refunds."""

    merchant_id: int
    currency: str
    gateway: str
    status: str
    available: Decimal
    captured: Decimal
    refunded: Decimal
    in_flight: Decimal


class _Rejected(Exception):
    def __init__(self, errors: list[RowError]):
        self.errors = errors


def refund_file_upload(*, name: str, content: bytes, user, actor: Actor | None = None) -> RefundFile:
    """Take a bulk refund file: an accepted RefundFile with its refunds Pending and due now, or a
    rejected one with its error report and no refund. Raises RefundFileRefused when the file is
    larger than MAX_FILE_BYTES or its content was accepted before (then nothing is recorded).
    `actor`: who, for the audit trail, which records an accepted file with its refunds."""
    if len(content) > MAX_FILE_BYTES:
        raise RefundFileRefused(
            f"The file has {len(content):,} bytes; at most {MAX_FILE_BYTES // (1024 * 1024)} MB are taken. Split it.",
            code="REFUND_FILE_TOO_LARGE",
        )
    carded = card_number_rows(content)
    if carded:  # refused before anything is recorded: a rejected file keeps its content
        shown = ", ".join(str(number) for number in carded[:10]) + (" …" if len(carded) > 10 else "")
        raise RefundFileRefused(
            f"Rows {shown} hold a card number (13 to 19 digits passing the Luhn check); PGI takes no card data. "
            "Nothing was recorded.",
            code=REFUSAL_CODE,
        )
    rows, errors = refund_file_parse(content)
    sha256 = rows_digest(rows) if rows else hashlib.sha256(content).hexdigest()
    _refuse_if_accepted(sha256)
    if rows:
        try:
            with transaction.atomic():
                accepted = _accept(
                    name=clip(name, 255), sha256=sha256, content=content, rows=rows, errors=errors, user=user
                )
                after = {"outcome": accepted.outcome, "rows": accepted.rows, "totals": accepted.total_by_currency,
                         "sha256": accepted.sha256, "name": accepted.name}  # fmt: skip
                audit_record(actor=actor, action="refund_file.upload", obj=accepted, after=after)
                return accepted
        except _Rejected as rejected:  # the transaction is rolled back: no row written, locks released
            errors = rejected.errors
    return RefundFile.objects.create(
        name=clip(name, 255),
        sha256=sha256,
        content=content,
        outcome=RefundFile.Outcome.REJECTED,
        rows=len(rows),
        errors=len(errors),
        error_report=error_report(errors),
        uploaded_by=user,
    )


def card_number_rows(content: bytes) -> list[int]:
    """The lines of the file with a card number (pgi.cards) in any cell but an idempotency key's;
    [1] for a file that is not CSV and holds one anywhere."""
    text = content.decode("utf-8-sig", "replace")
    try:
        lines = list(csv.reader(io.StringIO(text.replace("\x00", ""), newline="")))
    except csv.Error:
        return [1] if has_card_number(text) else []
    header = [cell.strip().lower() for cell in lines[0]] if lines else []
    return [
        number
        for number, cells in enumerate(lines, start=1)
        if any(has_card_number(cell) for index, cell in enumerate(cells) if header[index:index + 1] != [KEY_COLUMN])
    ]


def rows_digest(rows: list[Row]) -> str:
    """The SHA-256 of what a file's rows say, not of its bytes: the same rows saved again by a
    spreadsheet (CRLF line ends, a BOM, quotes, 30 for 30.00) are the same file."""
    digest = hashlib.sha256()
    for row in rows:
        amount = "" if row.amount is None else format(row.amount.normalize(), "f")
        digest.update("\x1f".join((row.payment_id, amount, row.reason, row.key)).encode("utf-8", "surrogatepass") + b"\x1e")
    return digest.hexdigest()


def _refuse_if_accepted(sha256: str) -> None:
    earlier = (
        RefundFile.objects.filter(sha256=sha256, outcome=RefundFile.Outcome.ACCEPTED)
        .select_related("uploaded_by")
        .first()
    )
    if earlier is not None:
        raise RefundFileRefused(
            f"This content was accepted before, as file #{earlier.pk} {earlier.name!r} uploaded by "
            f"{earlier.uploaded_by.get_username()} at {instant(earlier.uploaded_at)}; its refunds exist.",
            code="REFUND_FILE_DUPLICATE",
        )


def error_report(errors: list[RowError]) -> str:
    """The CSV staff download: every cell quoted, none a formula. Each message starts with a word, so
    that only a cell echoing the file (a column name from its header) ever needs the guard's quote."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(REPORT_HEADER)
    writer.writerows([str(e.row), spreadsheet_safe(e.column), e.code, spreadsheet_safe(e.error)] for e in errors)
    return out.getvalue()


# --- Reading the file: shape only, no database -----------------------------------------------------


def refund_file_parse(content: bytes) -> tuple[list[Row], list[RowError]]:
    """The file's rows and the errors of their shape (header, cells, amounts, reasons, keys)."""
    try:
        text = content.decode("utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        return [], [
            RowError(line, "", "NOT_UTF8", f"not UTF-8 text (byte {exc.start + 1}): save the file as CSV UTF-8")
        ]
    if "\x00" in text:
        return [], [RowError(1, "", "NOT_TEXT", "the file holds NUL characters: it is not a CSV file")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
        errors = _header_errors(header)
        if errors:
            return [], errors
        rows, errors, seen_keys = [], [], {}
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # a blank line: a spreadsheet's trailing rows
            row, row_errors = _row(number, header, cells, seen_keys)
            rows.append(row)
            errors += row_errors
    except csv.Error as exc:
        return [], [RowError(reader.line_num, "", "NOT_CSV", f"not readable as CSV here: {exc}")]
    if not rows:
        return [], [RowError(1, "", "NO_ROWS", "the file has a header and no refund")]
    return rows, errors


def _header_errors(header: list[str]) -> list[RowError]:
    known = (*REQUIRED_COLUMNS, KEY_COLUMN)
    errors = [
        RowError(1, c, "MISSING_COLUMN", f"the header has no {c} column") for c in REQUIRED_COLUMNS if c not in header
    ]
    errors += [
        RowError(1, c, "UNKNOWN_COLUMN", f"unknown column; the columns are {', '.join(known)}")
        for c in header
        if c not in known
    ]
    errors += [
        RowError(1, c, "DUPLICATE_COLUMN", "the column appears twice")
        for c in sorted(set(header))
        if header.count(c) > 1
    ]
    return errors


def _row(number: int, header: list[str], cells: list[str], seen_keys: dict[str, int]) -> tuple[Row, list[RowError]]:
    errors = []
    if len(cells) != len(header):
        errors.append(RowError(number, "", "CELL_COUNT", f"{len(cells)} cells; the header has {len(header)}"))
    value = dict(zip(header, (cell.strip() for cell in cells), strict=False))
    payment_id = value.get("payment_id", "").lower()
    if not payment_id:
        errors.append(RowError(number, "payment_id", "PAYMENT_ID_REQUIRED", "no payment id"))
    elif not is_id(payment_id, "pay"):
        errors.append(
            RowError(
                number,
                "payment_id",
                "INVALID_PAYMENT_ID",
                f"payment id {clip(value.get('payment_id', ''), 40)!r} is not one (pay_ and 26 characters)",
            )
        )
    amount = _amount(value.get("amount", ""))
    if isinstance(amount, RowError):
        errors.append(RowError(number, "amount", amount.code, amount.error))
        amount = None
    reason = value.get("reason", "")
    if len(reason) > REASON_MAX:
        errors.append(RowError(number, "reason", "REASON_TOO_LONG", f"{len(reason)} characters; at most {REASON_MAX}"))
    key = value.get(KEY_COLUMN, "")
    if len(key) > KEY_MAX:
        errors.append(RowError(number, KEY_COLUMN, "KEY_TOO_LONG", f"{len(key)} characters; at most {KEY_MAX}"))
    elif key and key in seen_keys:
        errors.append(
            RowError(
                number,
                KEY_COLUMN,
                "DUPLICATE_KEY_IN_FILE",
                f"key {key!r} is also on row {seen_keys[key]}; a key names one refund",
            )
        )
    elif key:
        seen_keys[key] = number
    return Row(number, payment_id, amount, clip(reason, REASON_MAX), key), errors


def _amount(text: str) -> Decimal | RowError:
    if not text:
        return RowError(0, "", "AMOUNT_REQUIRED", "no amount")
    if not AMOUNT_SHAPE.fullmatch(text):
        return RowError(
            0, "", "INVALID_AMOUNT", f"amount {clip(text, 40)!r} is not one: digits, and a point before decimals (12.50)"
        )
    amount = Decimal(text)
    if amount <= 0:
        return RowError(0, "", "AMOUNT_NOT_POSITIVE", f"amount {text} is not greater than zero")
    if not is_storable_amount(amount):
        return RowError(0, "", "INVALID_AMOUNT", f"amount {clip(text, 40)} is too large, or has more than 4 decimals")
    return amount


# --- Checking against the database and writing, in one transaction --------------------------------


def _accept(*, name: str, sha256: str, content: bytes, rows: list[Row], errors: list[RowError], user) -> RefundFile:
    """Check every row against the database (all errors at once, with those of their shape) and
    write the file's refunds, or raise _Rejected. A file already wrong in shape takes no lock."""
    held = _lock(sorted({row.payment_id for row in rows if is_id(row.payment_id, "pay")}), lock=not errors)
    errors = errors + _row_checks(rows, held) + _keys_used(rows)
    if errors:
        raise _Rejected(sorted(errors, key=lambda e: (e.row, e.column)))
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[held[row.payment_id].currency] += row.amount
    try:
        with transaction.atomic():  # a savepoint: the duplicate is told apart from other failures
            refund_file = RefundFile.objects.create(
                name=name,
                sha256=sha256,
                content=content,
                outcome=RefundFile.Outcome.ACCEPTED,
                rows=len(rows),
                total_by_currency={code: f"{quantize(total, code)}" for code, total in sorted(totals.items())},
                uploaded_by=user,
            )
    except IntegrityError:
        _refuse_if_accepted(sha256)  # accepted by a concurrent upload that committed first
        raise
    try:
        _write(rows, held, refund_file)
    except IntegrityError as exc:
        if _constraint(exc) == "refund_bulk_key_once":
            raise RefundFileRefused(
                "A file accepted meanwhile uses one of this file's idempotency keys. Upload it again to see which rows.",
                code="REFUND_FILE_CONFLICT",
            ) from exc
        raise
    return refund_file


def _lock(payment_ids: list[str], lock: bool = True) -> dict[str, Held]:
    """The payments under their row locks, taken in id order (chunk after chunk, each ORDER BY id),
    so two uploads, or an upload and a single refund, never wait on each other in a cycle.
    `payment_ids` come sorted by code point, which is how "C" (SQLite: always) orders each chunk."""
    held = {}
    by_code_point = Collate("pk", "C") if connection.vendor == "postgresql" else "pk"
    for start in range(0, len(payment_ids), BATCH):
        chunk = payment_ids[start : start + BATCH]
        payments = Payment.objects.filter(pk__in=chunk).order_by(by_code_point)
        payments = (payments.select_for_update() if lock else payments).values_list(
            "pk", "merchant_id", "currency", "gateway", "status", "amount", "captured_amount", "refunded_amount"
        )
        in_flight = dict(
            Refund.objects.filter(payment_id__in=chunk, status=RefundStatus.PENDING)
            .values("payment_id")
            .annotate(total=Sum("amount"))
            .values_list("payment_id", "total")
        )
        for pk, merchant_id, currency, gateway, status, amount, captured, refunded in payments:
            captured = captured if captured is not None else amount
            pending = in_flight.get(pk) or Decimal(0)
            # services.refund_available's rule, for a set of payments at once.
            held[pk] = Held(
                merchant_id, currency, gateway, status, captured - refunded - pending, captured, refunded, pending
            )
    return held


def _row_checks(rows: list[Row], held: dict[str, Held]) -> list[RowError]:
    errors, taken = [], defaultdict(Decimal)
    for row in rows:
        if not is_id(row.payment_id, "pay"):
            continue  # reported with the shape
        payment = held.get(row.payment_id)
        if payment is None:
            errors.append(RowError(row.number, "payment_id", "PAYMENT_NOT_FOUND", f"no payment {row.payment_id}"))
            continue
        if payment.status not in REFUNDABLE:
            errors.append(
                RowError(
                    row.number,
                    "payment_id",
                    "PAYMENT_NOT_REFUNDABLE",
                    f"the payment is {payment.status}; only a Completed or PartiallyRefunded one can be refunded",
                )
            )
            continue
        if row.amount is None:
            continue
        code = payment.currency
        if not fits_currency(row.amount, code):
            errors.append(
                RowError(
                    row.number,
                    "amount",
                    "AMOUNT_PRECISION",
                    f"{code} allows at most {currency_exponent(code)} decimal places",
                )
            )
            continue
        taken[row.payment_id] += row.amount
        if taken[row.payment_id] > payment.available:
            errors.append(
                RowError(
                    row.number,
                    "amount",
                    "REFUND_EXCEEDS_AVAILABLE",
                    (
                        f"the file's refunds of {row.payment_id} reach {quantize(taken[row.payment_id], code)} {code} here; "
                        f"{quantize(max(payment.available, Decimal(0)), code)} remains (captured {quantize(payment.captured, code)}, "
                        f"refunded {quantize(payment.refunded, code)}, pending {quantize(payment.in_flight, code)})"
                    ),
                )
            )
    return errors


def _keys_used(rows: list[Row]) -> list[RowError]:
    """Keys an earlier file's refund already carries."""
    numbers = {row.key: row.number for row in rows if row.key}
    keys, errors = sorted(numbers), []
    for start in range(0, len(keys), BATCH):
        used = Refund.objects.filter(bulk_key__in=keys[start : start + BATCH]).values_list(
            "bulk_key", "pk", "refund_file_id"
        )
        errors += [
            RowError(numbers[key], KEY_COLUMN, "KEY_ALREADY_USED", f"key {key!r} is refund {pk}'s, from file #{file_id}")
            for key, pk, file_id in used
        ]
    return errors


def _write(rows: list[Row], held: dict[str, Held], refund_file: RefundFile) -> None:
    """The file's refunds with their operations (due now: the batch job sends them) and history."""
    now = timezone.now()
    ids = [new_refund_id() for _ in rows]
    _insert(
        GatewayOperation,
        ("payment_id", "kind", "amount", "idempotency_key", "next_look_at"),
        [
            (row.payment_id, OperationKind.REFUND, row.amount, refund_id, now)
            for row, refund_id in zip(rows, ids, strict=True)
        ],
    )
    operation_ids = _operation_ids(ids)
    columns = (
        "id",
        "payment_id",
        "merchant_id",
        "operation_id",
        "amount",
        "currency",
        "reason",
        "source",
        "refund_file_id",
        "status",
        "status_changed_at",
        "gateway",
        "bulk_key",
    )
    values = []
    for row, refund_id in zip(rows, ids, strict=True):
        payment = held[row.payment_id]
        values.append(
            (
                refund_id,
                row.payment_id,
                payment.merchant_id,
                operation_ids[refund_id],
                quantize(row.amount, payment.currency),
                payment.currency,
                row.reason,
                RefundSource.BULK_FILE,
                refund_file.pk,
                RefundStatus.PENDING,
                now,
                payment.gateway,
                row.key or None,
            )
        )
    _insert(Refund, columns, values)
    why = clip(f"received in bulk file #{refund_file.pk} {refund_file.name}", 255)
    _insert(
        RefundStatusChange,
        ("refund_id", "to_status", "source", "reason"),
        [(refund_id, RefundStatus.PENDING, RefundSource.BULK_FILE, why) for refund_id in ids],
    )
    # Announced once, inside the transaction, for the whole file (refunds_received_in_bulk): a
    # receiver writes its rows for all of them at once, not one statement per refund.
    refunds_received_in_bulk.send(
        sender=Refund, refunds=Refund.objects.filter(refund_file=refund_file), source=RefundSource.BULK_FILE
    )


def _operation_ids(keys: list[str]) -> dict[str, int]:
    found = {}
    for start in range(0, len(keys), BATCH * 5):
        chunk = keys[start : start + BATCH * 5]
        found.update(GatewayOperation.objects.filter(idempotency_key__in=chunk).values_list("idempotency_key", "pk"))
    return found


def _insert(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert `rows` of `columns` (attnames) into the model's table; every other column as a save
    writes it (its default, auto_now), the auto id by the database.

    On PostgreSQL one COPY per table: bulk_create spends most of a 100,000-row file building model
    instances and parameters (about 65 s against about 15 s with COPY, on 2 cores), past the web
    timeout. Elsewhere (SQLite in development) bulk_create."""
    template = model()
    others = [f for f in model._meta.concrete_fields if f.attname not in columns and not isinstance(f, AutoFieldMixin)]
    raw = tuple(f.pre_save(template, add=True) for f in others)
    names = (*columns, *(f.attname for f in others))
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(names, row + raw, strict=True))) for row in rows], batch_size=BATCH)
        return
    constant = tuple(f.get_db_prep_save(value, connection) for f, value in zip(others, raw, strict=True))
    table = connection.ops.quote_name(model._meta.db_table)
    column_of = {f.attname: f.column for f in model._meta.concrete_fields}
    quoted = ", ".join(connection.ops.quote_name(column_of[name]) for name in names)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row + constant)


def _constraint(exc: IntegrityError) -> str:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", "") or ""
