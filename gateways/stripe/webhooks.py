"""Stripe's webhooks: the signature check (the SDK's own) and the event types PGI acts on, each
type dispatched through HANDLERS to a small function that reads it as WebhookEvents."""

from typing import Any, Callable, Mapping

import stripe
from django.conf import settings

from pgi.text import clip

from ..base import InvalidNotification, InvalidSignature, Operation, WebhookEvent, header_value
from .results import METADATA_PAYMENT_ID, METADATA_REFUND_ID, metadata_value, payment_result, refund_result, value_of

SIGNATURE_HEADER = "Stripe-Signature"

Handler = Callable[[Any, Any], list[WebhookEvent]]


def webhook_events(
    client: stripe.StripeClient, *, headers: Mapping[str, str], body: bytes, secret: str
) -> list[WebhookEvent]:
    """One Stripe event per delivery, verified with the SDK's own check (HMAC-SHA256 of
    "<t>.<body>" with the endpoint secret; `t` not older than PGI_WEBHOOK_TOLERANCE_SECONDS).
    Raises InvalidSignature, or InvalidNotification for a verified body PGI cannot read. Types PGI
    does not act on give an empty list: acknowledged, nothing changes."""
    signature_verify(headers=headers, body=body, secret=secret)
    # Verified: whatever fails from here is a notification PGI cannot read, not a forgery.
    try:
        event = client.construct_event_without_verification(body)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:  # not a snapshot event
        raise InvalidNotification("The body is not a Stripe event.") from exc
    try:
        return events_of(event)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
        message = f"The Stripe event {value_of(event, 'id')} is not as expected: {exc!r}"
        raise InvalidNotification(clip(message, 500)) from exc


def signature_verify(*, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raises InvalidSignature unless the Stripe-Signature header signs `body` with `secret`."""
    header = header_value(headers, SIGNATURE_HEADER)
    if not header.isascii():  # the SDK's compare_digest raises TypeError on other text
        raise InvalidSignature("Stripe signature refused: the header is not ASCII.")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=settings.PGI_WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(f"Stripe signature refused: {exc.user_message}") from exc
    except (ValueError, TypeError, IndexError) as exc:  # a body that is not UTF-8, a garbled header
        raise InvalidSignature("Stripe signature refused: the delivery cannot be verified.") from exc


def events_of(event: Any) -> list[WebhookEvent]:
    """A verified event as WebhookEvents: its type's handler, or none for a type PGI ignores.
    Raises KeyError, TypeError … for an event not of the shape its type promises."""
    event_type = event["type"]
    obj = event["data"]["object"]
    handler = HANDLERS.get(event_type)
    return handler(event, obj) if handler else []


def _payment_event(event: Any, obj: Any, operation: Operation) -> list[WebhookEvent]:
    return [
        WebhookEvent(
            event_id=event["id"],
            operation=operation,
            payment_id=metadata_value(obj, METADATA_PAYMENT_ID),
            result=payment_result(obj),
            gateway_reference=obj["id"],
            raw_type=event["type"],
        )
    ]


def _payment(operation: Operation) -> Handler:
    """The handler of a PaymentIntent event that always reports `operation`."""
    return lambda event, obj: _payment_event(event, obj, operation)


def _payment_succeeded(event: Any, obj: Any) -> list[WebhookEvent]:
    # A manual-capture PaymentIntent succeeds when it is captured; any other when it is paid.
    operation = Operation.CAPTURE if value_of(obj, "capture_method") == "manual" else Operation.AUTHORIZE
    return _payment_event(event, obj, operation)


def _refund(event: Any, obj: Any) -> list[WebhookEvent]:
    return [
        WebhookEvent(
            event_id=event["id"],
            operation=Operation.REFUND,
            payment_id=metadata_value(obj, METADATA_PAYMENT_ID),
            refund_id=metadata_value(obj, METADATA_REFUND_ID),
            refund_result=refund_result(obj),
            gateway_reference=str(value_of(obj, "payment_intent") or ""),
            raw_type=event["type"],
        )
    ]


# The event types PGI acts on; any other is acknowledged and changes nothing.
HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.amount_capturable_updated": _payment(Operation.AUTHORIZE),
    "payment_intent.payment_failed": _payment(Operation.AUTHORIZE),
    "payment_intent.processing": _payment(Operation.AUTHORIZE),
    "payment_intent.canceled": _payment(Operation.VOID),
    "refund.created": _refund,
    "refund.updated": _refund,
    "refund.failed": _refund,
    "charge.refund.updated": _refund,
}
