"""The simulator's webhooks: the signature (an HMAC like Stripe's), the body it sends for a charge
or refund, and the reading of a delivery, each event type dispatched through EVENTS to a reader."""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Mapping

from django.conf import settings

from pgi.money import quantize
from pgi.text import clip

from ..base import (
    GatewayResult,
    GatewayStatus,
    InvalidNotification,
    InvalidSignature,
    Operation,
    RefundResult,
    RefundStatus,
    WebhookEvent,
)
from .codes import MESSAGES
from .ledger import charge_result
from .models import SimulatorCharge, SimulatorRefund

SIGNATURE_HEADER = "Simulator-Signature"

Status = SimulatorCharge.Status


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The header value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# Secrets printed in PGI's own docs or shipped in older versions: anyone may know them, so a
# simulator configured with one accepts no webhook.
PUBLIC_SECRETS = frozenset({"whsec_simulator_local"})
# Outside the sandbox a shorter secret could be guessed: webhooks are refused, as check --deploy says.
SECRET_MIN_LENGTH = 32
# Unix seconds fit in 12 digits until the year 33658; longer `t` values are not timestamps.
_MAX_TIMESTAMP_DIGITS = 12


def verify(*, secret: str, header: str, body: bytes, tolerance: int, now: float | None = None) -> None:
    """Raises InvalidSignature unless the header signs the body within `tolerance` seconds of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        raw_timestamp, given = parts["t"].strip(), parts["v1"].strip()
        if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS:
            raise ValueError("t is not a unix timestamp")
        timestamp = int(raw_timestamp)
        given_bytes = given.encode("ascii")
    except (KeyError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidSignature("Malformed signature header.") from exc
    if abs((now or time.time()) - timestamp) > tolerance:
        raise InvalidSignature("Signature timestamp is outside the tolerance.")
    expected = sign(secret=secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected.encode("ascii"), given_bytes):
        raise InvalidSignature("Signature does not match.")




def webhook_events(*, headers: Mapping[str, str], body: bytes, secret: str) -> list[WebhookEvent]:
    """One event per delivery. Raises InvalidSignature for a bad or stale signature, and
    InvalidNotification for a body that is not a simulator event, an unknown event type, or a
    status that does not fit the type."""
    verify(
        secret=secret,
        header=headers.get(SIGNATURE_HEADER, ""),
        body=body,
        tolerance=settings.PGI_WEBHOOK_TOLERANCE_SECONDS,
    )
    try:
        return [event_of(json.loads(body))]
    except (KeyError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise InvalidNotification(clip(f"The notification body is not a simulator event: {exc!r}", 500)) from exc


@dataclass(frozen=True)
class _Event:
    """What every event body carries, read and checked against its type."""

    payload: Mapping
    data: Mapping
    event_type: str
    operation: Operation
    status: str
    amount: Decimal
    decline_code: str


def event_of(payload: Mapping) -> WebhookEvent:
    """A decoded event body as a WebhookEvent. Raises KeyError, ValueError or TypeError when it is
    not one: an unknown type, a status that does not fit the type, a field missing or mistyped."""
    event_type, data = _string(payload, "type"), payload["data"]
    operation, status, read = EVENTS[event_type]
    if _string(data, "status") != status:
        raise ValueError(f"status {data['status']!r} in a {event_type} event")
    amount = Decimal(_string(data, "amount"))
    if not amount.is_finite():
        raise ValueError(f"amount {data['amount']!r}")
    code = _string(data, "declineCode", "")
    return read(_Event(payload, data, event_type, operation, status, amount, code))


def _string(mapping: Mapping, key: str, default: str | None = None) -> str:
    """A text field of the body (`default` when absent, if given). Raises KeyError or TypeError."""
    value = mapping[key] if default is None else mapping.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _charge_event(event: _Event) -> WebhookEvent:
    data = event.data
    return WebhookEvent(
        event_id=_string(event.payload, "id"),
        operation=event.operation,
        payment_id=_string(data, "merchantReference"),
        result=GatewayResult(
            status=GatewayStatus(event.status),
            reference=_string(data, "reference"),
            amount=event.amount,
            currency=_string(data, "currency"),
            error_code=event.decline_code,
            error_message=MESSAGES.get(event.decline_code, ""),
        ),
        gateway_reference=_string(data, "reference"),
        raw_type=event.event_type,
    )


def _refund_event(event: _Event) -> WebhookEvent:
    data = event.data
    return WebhookEvent(
        event_id=_string(event.payload, "id"),
        operation=event.operation,
        payment_id=_string(data, "merchantReference"),
        refund_id=_string(data, "refundReference"),
        refund_result=RefundResult(
            status=RefundStatus(event.status),
            reference=_string(data, "reference"),
            amount=event.amount,
            currency=_string(data, "currency"),
            error_code=event.decline_code,
            error_message=_string(data, "declineMessage", ""),
        ),
        gateway_reference=_string(data, "chargeReference"),
        raw_type=event.event_type,
    )


# Event types: the operation each one reports, the status its body must carry, and its reader.
EVENTS: dict[str, tuple[Operation, str, Callable[[_Event], WebhookEvent]]] = {
    "charge.pending": (Operation.AUTHORIZE, Status.PENDING, _charge_event),
    "charge.authorized": (Operation.AUTHORIZE, Status.AUTHORIZED, _charge_event),
    "charge.succeeded": (Operation.AUTHORIZE, Status.SUCCEEDED, _charge_event),  # authorized and captured at once
    "charge.declined": (Operation.AUTHORIZE, Status.DECLINED, _charge_event),
    "charge.captured": (Operation.CAPTURE, Status.SUCCEEDED, _charge_event),  # captured by a capture call
    "charge.cancelled": (Operation.VOID, Status.CANCELLED, _charge_event),
    "refund.succeeded": (Operation.REFUND, SimulatorRefund.Status.SUCCEEDED, _refund_event),
    "refund.failed": (Operation.REFUND, SimulatorRefund.Status.FAILED, _refund_event),
}


def charge_event_type(charge: SimulatorCharge) -> str:
    """The event type of a charge's current state."""
    if charge.status == Status.SUCCEEDED and not charge.capture:
        return "charge.captured"
    return f"charge.{charge.status}"


def webhook_body(charge: SimulatorCharge, *, refund: SimulatorRefund | None = None) -> bytes:
    """The notification the simulator sends for a charge's current state, or for one of its
    refunds. The event id names the charge (or refund) and the event type, so a repeated
    delivery of one event carries one id."""
    if refund is not None:
        event_type, subject = f"refund.{refund.status}", refund
        data = {
            "reference": refund.reference,
            "chargeReference": charge.reference,
            "merchantReference": charge.idempotency_key,
            "refundReference": refund.refund_id,
            "status": refund.status,
            "amount": str(quantize(refund.amount, refund.currency)),
            "currency": refund.currency,
            "declineCode": refund.error_code,
            "declineMessage": refund.error_message,
        }
    else:
        event_type, subject = charge_event_type(charge), charge
        result = charge_result(charge)
        data = {
            "reference": charge.reference,
            "merchantReference": charge.idempotency_key,
            "status": charge.status,
            "amount": str(quantize(result.amount, charge.currency)),
            "currency": charge.currency,
            "declineCode": charge.decline_code,
        }
    payload = {
        "id": f"evt_{subject.reference}.{event_type}",
        "type": event_type,
        "created": int(time.time()),
        "data": data,
    }
    return json.dumps(payload).encode()
