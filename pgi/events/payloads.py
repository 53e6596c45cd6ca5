"""The messages PGI publishes: their types, their JSON, and the outbox rows that carry them.

`payment-events` carries the specification's message (event, paymentId, details) plus additive
fields; `payment-notifications` carries outcomes only, with a sentence for people. The formats, with
examples and JSON Schemas, are in docs/09-events.md and docs/events/.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import simplejson
from django.conf import settings

from payments.models import Payment, PaymentStatus
from pgi.cards import mask
from pgi.money import quantize
from refunds.models import Refund, RefundStatus
from settlements.models import SettlementBatch

from pgi.observability import request_id

from .models import OutboxEvent, PublishedMessage

EVENT_VERSION = 1

# A payment's status, reached, names its event; creation (from_status "") is PAYMENT_CREATED.
# Processing (outcome not known yet) and the refund statuses say only that the status moved: the
# refund's own events carry the refund, and PAYMENT_STATUS_UPDATED carries the payment's new status.
PAYMENT_EVENTS = {
    PaymentStatus.AUTHORIZED: "PAYMENT_AUTHORIZED",
    PaymentStatus.COMPLETED: "PAYMENT_PROCESSED",
    PaymentStatus.FAILED: "PAYMENT_FAILED",
    PaymentStatus.CANCELLED: "PAYMENT_CANCELLED",
}
PAYMENT_CREATED = "PAYMENT_CREATED"
PAYMENT_STATUS_UPDATED = "PAYMENT_STATUS_UPDATED"

# A refund is published when it is accepted (REFUND_CREATED, Pending) and when it ends.
REFUND_EVENTS = {
    RefundStatus.PENDING: "REFUND_CREATED",
    RefundStatus.COMPLETED: "REFUND_COMPLETED",
    RefundStatus.FAILED: "REFUND_FAILED",
    RefundStatus.CANCELLED: "REFUND_CANCELLED",
}

# Outcomes, also told on payment-notifications.
NOTIFIED = frozenset({"PAYMENT_PROCESSED", "PAYMENT_FAILED", "REFUND_COMPLETED", "REFUND_FAILED"})


def events_settings() -> dict:
    return {
        "payment_events_topic": "payment-events",
        "notifications_topic": "payment-notifications",
        "retention_days": 7,
        "prune_batch_size": 1000,
        **getattr(settings, "PGI_EVENTS", {}),
    }


def json_text(message: dict) -> str:
    """The message as published: compact JSON, keys in the order built, Decimal as its exact digits
    (50.00 stays 50.00; json would need a float, and 0.1 + 0.2 is no amount), text unescaped.

    Written by orjson (a fifth of simplejson's CPU); what orjson refuses (a lone surrogate) by
    simplejson, which wrote every message before: tests/events/test_payloads.py compares the two."""
    try:
        return orjson.dumps(message, default=_decimal_text).decode()
    except orjson.JSONEncodeError:
        return simplejson.dumps(message, use_decimal=True, ensure_ascii=False, separators=(",", ":"))


def _decimal_text(value):
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the API writes `timestamp`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payment_event_type(*, to_status: str, from_status: str) -> str:
    if not from_status:
        return PAYMENT_CREATED
    return PAYMENT_EVENTS.get(to_status, PAYMENT_STATUS_UPDATED)


def refund_event_type(*, to_status: str) -> str:
    return REFUND_EVENTS[to_status]


def _envelope(event_type: str, payment_id: str, details: dict, now: datetime) -> dict:
    # The specification's keys first, in its order; eventId, eventVersion and occurredAt are additive.
    return {
        "event": event_type,
        "eventId": str(uuid.uuid4()),
        "eventVersion": EVENT_VERSION,
        "occurredAt": utc_text(now),
        "paymentId": payment_id,
        "details": details,
    }


def _failure(details: dict, row: Payment | Refund) -> dict:
    if row.failure_code:
        details["failureCode"] = row.failure_code
        details["failureMessage"] = row.failure_message
    return details


def payment_message(*, payment: Payment, from_status: str, now: datetime) -> dict:
    """The payment-events message for a payment that has just reached `payment.status`."""
    details = {
        "amount": quantize(payment.amount, payment.currency),
        "currency": payment.currency,
        # Whole for the bank's systems on Kafka; merchants' webhooks carry it masked (merchant_facing_body).
        "fromAccount": payment.from_account,
        "toMerchant": payment.merchant.code,
        "status": payment.status,
        "timestamp": utc_text(payment.status_changed_at),
        "previousStatus": from_status or None,
        "reference": payment.reference,
    }
    event_type = payment_event_type(to_status=payment.status, from_status=from_status)
    return _envelope(event_type, payment.pk, _failure(details, payment), now)


def refund_message(*, refund: Refund, from_status: str, now: datetime) -> dict:
    """The payment-events message for a refund that has just reached `refund.status`."""
    details = {
        "refundId": refund.pk,
        "amount": quantize(refund.amount, refund.currency),
        "currency": refund.currency,
        "status": refund.status,
        "timestamp": utc_text(refund.status_changed_at),
        "previousStatus": from_status or None,
    }
    event_type = refund_event_type(to_status=refund.status)
    return _envelope(event_type, refund.payment_id, _failure(details, refund), now)


SETTLEMENT_COMPLETED = "SETTLEMENT_COMPLETED"


def settlement_message(*, batch: SettlementBatch, now: datetime) -> dict:
    """The payment-events message for a settlement batch just made. Its own envelope: it names a
    batch (settlementId, also the Kafka key), not a payment."""
    def money(amount):
        return quantize(amount, batch.currency)

    return {
        "event": SETTLEMENT_COMPLETED,
        "eventId": str(uuid.uuid4()),
        "eventVersion": EVENT_VERSION,
        "occurredAt": utc_text(now),
        "settlementId": batch.pk,
        "details": {
            "merchant": batch.merchant.code,
            "currency": batch.currency,
            "cutoff": utc_text(batch.cutoff),
            "grossAmount": money(batch.gross_amount),
            "refundAmount": money(batch.refund_amount),
            "feeAmount": money(batch.fee_amount),
            "carriedAmount": money(batch.carried_amount),
            "netAmount": money(batch.net_amount),
            "paymentCount": batch.payment_count,
            "refundCount": batch.refund_count,
            "payoutStatus": batch.status,
            "payoutDate": batch.payout_date.isoformat(),
        },
    }


_SENTENCES = {
    "PAYMENT_PROCESSED": "Payment {id} of {money} to {merchant} completed.",
    "PAYMENT_FAILED": "Payment {id} of {money} to {merchant} failed{why}.",
    "REFUND_COMPLETED": "Refund {id} of {money} for payment {payment} completed.",
    "REFUND_FAILED": "Refund {id} of {money} for payment {payment} failed{why}.",
}


def notification_message(message: dict) -> dict:
    """The payment-notifications message for an outcome: the same event under its own eventId, with
    a sentence a person can read (`message`)."""
    details = message["details"]
    sentence = _SENTENCES[message["event"]].format(
        id=details.get("refundId", message["paymentId"]),
        payment=message["paymentId"],
        money=f"{details['amount']} {details['currency']}",
        merchant=details.get("toMerchant", ""),
        why=f": {details['failureMessage'].rstrip('.')}" if details.get("failureMessage") else "",
    )
    return {**message, "eventId": str(uuid.uuid4()), "message": sentence}


def outbox_rows(message: dict, *, merchant_id: int | None = None) -> list[OutboxEvent]:
    """The unsaved outbox rows for a payment-events message: one, and a notification for an outcome.
    `merchant_id` is whose event it is (merchant webhooks are fanned out by it)."""
    config = events_settings()
    rows = [_row(config["payment_events_topic"], message, merchant_id)]
    if message["event"] in NOTIFIED:
        rows.append(_row(config["notifications_topic"], notification_message(message), merchant_id))
    return rows


def _row(topic: str, message: dict, merchant_id: int | None) -> OutboxEvent:
    body = json_text(message)
    return OutboxEvent(
        event_id=uuid.UUID(message["eventId"]),
        topic=topic,
        key=message.get("paymentId") or message["settlementId"],
        event_type=message["event"],
        payload=PublishedMessage(message, body),
        body=body,
        merchant_id=merchant_id,
        request_id=request_id.current(),
    )


def merchant_facing_body(body: str) -> str:
    """A payment-events message as a merchant's webhook carries it: the paying account masked to its
    last four characters (pgi.cards.mask), every other byte as published on Kafka, where the bank's
    own systems read it whole."""
    message = decimal_loads(body)
    details = message.get("details")
    if not isinstance(details, dict) or not isinstance(details.get("fromAccount"), str):
        return body
    details["fromAccount"] = mask(details["fromAccount"])
    return json_text(message)


def decimal_loads(text: str) -> dict:
    """A message read back with its amounts as Decimal (for tests and consumers in Python)."""
    return simplejson.loads(text, use_decimal=True)

