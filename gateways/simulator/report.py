"""The simulator's settlement report: its CSV format, written from the ledger and read back."""

import csv
import datetime
import decimal
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, TextIO

from pgi.money import quantize

from ..base import ReportLine
from .ledger import captured_total
from .models import SimulatorCharge, SimulatorRefund

Status = SimulatorCharge.Status

REPORT_COLUMNS = (
    "record_type",
    "simulator_reference",
    "merchant_reference",
    "refund_reference",
    "amount",
    "currency",
    "fee",
    "booked_at",
    "status",
)
REPORT_KINDS = {"capture": ReportLine.Kind.PAYMENT, "refund": ReportLine.Kind.REFUND}
REPORT_STATUSES = {"capture": "settled", "refund": "refunded"}
_BOOKED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class ReportFormatError(ValueError):
    """A file that is not a simulator settlement report (header, column count, or a value)."""


def _booked_at(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(_BOOKED_AT_FORMAT)


def parse_report_csv(text: str) -> list[ReportLine]:
    """The lines of a simulator settlement report, as written by `SimulatorConnector.report_csv`.
    Raises ReportFormatError on anything else."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != REPORT_COLUMNS:
        raise ReportFormatError(f"The header is not {','.join(REPORT_COLUMNS)}.")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(REPORT_COLUMNS):
            raise ReportFormatError(f"Line {number} has {len(row)} fields, not {len(REPORT_COLUMNS)}.")
        record = dict(zip(REPORT_COLUMNS, row))
        try:
            booked_at = datetime.datetime.strptime(record["booked_at"], _BOOKED_AT_FORMAT).replace(tzinfo=datetime.UTC)
            lines.append(
                ReportLine(
                    kind=REPORT_KINDS[record["record_type"]],
                    gateway_reference=record["simulator_reference"],
                    payment_id=record["merchant_reference"],
                    amount=Decimal(record["amount"]),
                    currency=record["currency"],
                    booked_at=booked_at,
                    fee=Decimal(record["fee"]),
                    refund_id=record["refund_reference"],
                    status=record["status"],
                )
            )
        except (KeyError, ValueError, decimal.InvalidOperation) as exc:
            raise ReportFormatError(f"Line {number} is not a report line: {exc!r}") from exc
    return lines


@dataclass(frozen=True)
class Booking:
    """One report line before it is written."""

    record_type: str
    reference: str
    payment_id: str
    refund_id: str
    amount: Decimal
    currency: str
    booked_at: datetime.datetime


def day_bookings(*, code: str, day: datetime.date) -> list[Booking]:
    """The captures and refunds the simulator with this gateway code booked on one UTC day, oldest first."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=1)
    captured = SimulatorCharge.objects.filter(
        gateway=code, status=Status.SUCCEEDED, captured_at__gte=start, captured_at__lt=end
    )
    refunded = SimulatorRefund.objects.filter(
        gateway=code, status=SimulatorRefund.Status.SUCCEEDED, created_at__gte=start, created_at__lt=end
    ).select_related("charge")
    bookings = [
        Booking(
            record_type="capture",
            reference=charge.reference,
            payment_id=charge.idempotency_key,
            refund_id="",
            amount=captured_total(charge),
            currency=charge.currency,
            booked_at=charge.captured_at,
        )
        for charge in captured
    ]
    bookings += [
        Booking(
            record_type="refund",
            reference=refund.reference,
            payment_id=refund.charge.idempotency_key,
            refund_id=refund.refund_id,
            amount=refund.amount,
            currency=refund.currency,
            booked_at=refund.created_at,
        )
        for refund in refunded
    ]
    bookings.sort(key=lambda booking: (booking.booked_at, booking.reference))
    return bookings


def report_csv(bookings: list[Booking], *, fee: Callable[[Decimal, str], Decimal]) -> str:
    """The settlement report of these bookings, in the simulator's CSV format (docs/03-simulator.md):
    a header row, then one line per capture and per refund, with `fee(amount, currency)` kept."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for booking in bookings:
        writer.writerow(
            [
                booking.record_type,
                booking.reference,
                booking.payment_id,
                booking.refund_id,
                quantize(booking.amount, booking.currency),
                booking.currency,
                fee(booking.amount, booking.currency),
                _booked_at(booking.booked_at),
                REPORT_STATUSES[booking.record_type],
            ]
        )
    return out.getvalue()


def simulator_report_write(*, code: str, day: datetime.date, out: TextIO) -> int:
    """Write the settlement report of the simulator with this gateway code for one UTC day to
    `out`; returns the number of lines below the header. Raises LookupError (UnknownGateway) for
    an unknown code and TypeError for a gateway that is not a simulator."""
    from ..registry import get_connector  # the registry builds connectors, which import this module
    from .connector import SimulatorConnector

    connector = get_connector(code)
    if not isinstance(connector, SimulatorConnector):
        raise TypeError(f"{code} is not a simulator gateway")
    text = connector.report_csv(day)
    out.write(text)
    return text.count("\n") - 1
