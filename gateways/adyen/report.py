"""Adyen's Payments Accounting Report (CSV) as PGI's report lines."""

import csv
import datetime
import io
from decimal import Decimal, InvalidOperation

from ..base import GatewayError, ReportLine

# Time zone abbreviations seen in the reports' TimeZone column, as fixed UTC offsets in hours.
# Ambiguous ones (CST, IST) are left out on purpose: set the account's report time zone to UTC.
REPORT_TIME_ZONES = {
    "UTC": 0, "GMT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
    "MSK": 3, "SGT": 8, "HKT": 8, "JST": 9, "AEST": 10, "AEDT": 11, "BRT": -3, "EST": -5, "EDT": -4,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip

REPORT_KINDS = {
    "settled": ReportLine.Kind.PAYMENT,
    "settledexternally": ReportLine.Kind.PAYMENT,
    "settledbulk": ReportLine.Kind.PAYMENT,
    "refunded": ReportLine.Kind.REFUND,
    "refundedexternally": ReportLine.Kind.REFUND,
    "refundedbulk": ReportLine.Kind.REFUND,
    "chargeback": ReportLine.Kind.CHARGEBACK,
    "chargebackexternally": ReportLine.Kind.CHARGEBACK,
    "secondchargeback": ReportLine.Kind.CHARGEBACK,
    "fee": ReportLine.Kind.FEE,
    "misccosts": ReportLine.Kind.FEE,
    "paymentcost": ReportLine.Kind.FEE,
    "chargebackreversed": ReportLine.Kind.OTHER,
    "refundedreversed": ReportLine.Kind.OTHER,
}
# Lifecycle records: status changes in which no money was booked (the report lists one line per
# status, so a settled payment also has Received, Authorised and SentForSettle lines).
REPORT_LIFECYCLE = {
    "received", "authorised", "sentforsettle", "sentforrefund", "refused", "cancelled", "expired",
    "error", "retried", "reversed", "capturefailed", "refundfailed", "authorisationschemefee",
}  # fmt: skip
REPORT_FEE_COLUMNS = ("Commission (SC)", "Markup (SC)", "Scheme Fees (SC)", "Interchange (SC)")


def report_lines(text: str, *, merchant_account: str) -> list[ReportLine]:
    """The lines of a payments accounting report (CSV) that booked money on `merchant_account`;
    raises GatewayError for a line PGI cannot read."""
    lines = []
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        try:
            line = report_line(row, merchant_account=merchant_account)
        except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
            raise GatewayError(f"Adyen report line {number} cannot be read: {exc!r}") from exc
        if line is not None:
            lines.append(line)
    return lines


def report_line(row: dict[str, str], *, merchant_account: str) -> ReportLine | None:
    """One row as a report line; None for a lifecycle line or another merchant account's."""
    record_type = (row.get("Record Type") or "").strip()
    kind = REPORT_KINDS.get(record_type.lower())
    if kind is None and record_type.lower() in REPORT_LIFECYCLE:
        return None
    if (row.get("Merchant Account") or merchant_account) != merchant_account:
        return None
    kind = kind or ReportLine.Kind.OTHER
    currency = (row.get("Main Currency") or row.get("Settlement Currency") or "").strip()
    fee_values = [Decimal(row[name]) for name in REPORT_FEE_COLUMNS if (row.get(name) or "").strip()]
    fee_total = sum((abs(value) for value in fee_values), Decimal(0)) if fee_values else None
    main_amount = (row.get("Main Amount") or "").strip()
    if main_amount:
        amount = abs(Decimal(main_amount))
    elif kind is ReportLine.Kind.FEE and fee_total is not None:
        amount = fee_total
    else:
        raise ValueError("no Main Amount")
    # Costs are in the settlement currency: they go in `fee` only when that is the line's currency.
    same_currency = (row.get("Settlement Currency") or "").strip() in {"", currency}
    fee = fee_total if same_currency and kind is not ReportLine.Kind.FEE else None
    return ReportLine(
        kind=kind,
        gateway_reference=(row.get("Psp Reference") or "").strip(),
        payment_id=(row.get("Merchant Reference") or "").strip(),
        amount=amount,
        currency=currency,
        booked_at=booked_at(row["Booking Date"], row.get("TimeZone") or "UTC"),
        fee=fee,
        refund_id=(row.get("Modification Merchant Reference") or "").strip()
        if kind is ReportLine.Kind.REFUND
        else "",
        status=record_type,
    )


def booked_at(value: str, zone: str) -> datetime.datetime:
    """`YYYY-MM-DD HH:MM:SS` in the report's TimeZone -> an aware UTC datetime."""
    hours = REPORT_TIME_ZONES.get(zone.strip().upper())
    if hours is None:
        raise ValueError(f"unknown report time zone {zone!r}; set the report time zone to UTC")
    naive = datetime.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    local = naive.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=hours)))
    return local.astimezone(datetime.timezone.utc)
