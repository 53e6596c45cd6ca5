"""A day of Stripe balance transactions as PGI's report lines."""

import datetime
from typing import Any, Callable, Sequence

from ..base import ReportLine
from .amounts import from_minor_units
from .results import METADATA_PAYMENT_ID, METADATA_REFUND_ID, metadata_value, value_of

# Balance transaction types (docs.stripe.com/api/balance_transactions/object#balance_transaction_object-type).
PAYMENT_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
FEE_TYPES = frozenset({"stripe_fee", "stripe_fx_fee", "tax_fee", "application_fee"})


def report_lines(transactions: Sequence[Any], payment_id_of: Callable[[str], str]) -> list[ReportLine]:
    """The balance transactions (as Stripe lists them, newest first) as report lines, oldest first.
    `payment_id_of(intent_id)` finds PGI's payment id of a PaymentIntent for the sources that do
    not carry it (disputes)."""
    lines = [report_line(transaction, payment_id_of) for transaction in reversed(transactions)]
    lines.sort(key=lambda line: line.booked_at)
    return lines


def report_line(transaction: Any, payment_id_of: Callable[[str], str]) -> ReportLine:
    kind = report_kind(transaction)
    currency = str(transaction["currency"]).upper()
    source = value_of(transaction, "source")
    source_obj = source if source is not None and not isinstance(source, str) else None
    intent_id = str(value_of(source_obj, "payment_intent") or "") if source_obj else ""
    payment_id = metadata_value(source_obj, METADATA_PAYMENT_ID) if source_obj else ""
    if not payment_id and intent_id and kind is not ReportLine.Kind.FEE:
        payment_id = payment_id_of(intent_id)
    if kind is ReportLine.Kind.PAYMENT or kind is ReportLine.Kind.CHARGEBACK:
        reference = intent_id or _source_id(source) or transaction["id"]
    else:
        reference = _source_id(source) or transaction["id"]
    return ReportLine(
        kind=kind,
        gateway_reference=reference,
        payment_id=payment_id,
        amount=abs(from_minor_units(transaction["amount"], currency)),
        currency=currency,
        booked_at=datetime.datetime.fromtimestamp(transaction["created"], tz=datetime.UTC),
        fee=from_minor_units(transaction["fee"], currency),
        refund_id=metadata_value(source_obj, METADATA_REFUND_ID) if kind is ReportLine.Kind.REFUND else "",
        status=str(value_of(transaction, "status") or ""),
    )


def report_kind(transaction: Any) -> ReportLine.Kind:
    kind, category = transaction["type"], value_of(transaction, "reporting_category") or ""
    if kind in PAYMENT_TYPES:
        return ReportLine.Kind.PAYMENT
    if kind in REFUND_TYPES:
        return ReportLine.Kind.REFUND
    if category == "dispute" or kind == "dispute":
        return ReportLine.Kind.CHARGEBACK
    if kind in FEE_TYPES or category == "fee":
        return ReportLine.Kind.FEE
    return ReportLine.Kind.OTHER  # dispute reversals, payouts, transfers, partial-capture reversals …


def _source_id(source: Any) -> str:
    if not source:
        return ""
    return source if isinstance(source, str) else str(value_of(source, "id") or "")
