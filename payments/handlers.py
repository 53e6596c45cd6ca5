"""Gateway notifications about payments, applied to them. Registered in PaymentsConfig.ready().

gateways stores each notification and calls these inside the same transaction; they find the
payment it names and return the (outcome, detail) kept on the notification's row.
"""

from dataclasses import replace

from gateways.base import GatewayStatus, WebhookEvent
from gateways.models import GatewayNotification
from pgi.text import clip

from .models import Payment, PaymentStatusChange
from .services import payment_apply_gateway_result, reference_mismatch

Outcome = GatewayNotification.Outcome


def payment_notification_apply(*, gateway: str, event: WebhookEvent) -> tuple[str, str]:
    """An authorize, capture, void (or status) notice: applied to its payment, or flagged when it contradicts it."""
    payment, unmatched = _payment_for(gateway, event)
    if payment is None:
        return Outcome.UNMATCHED, unmatched
    if event.result is None:
        return Outcome.RECORDED, f"{event.operation.value} notice kept for payment {payment.id}"
    before = payment.status, payment.pending_operation
    attention_before = payment.needs_attention, payment.attention_code, payment.attention_reason
    # Named by id but carrying another payment's reference: never applied. The payment service
    # treats it as a contradiction (an open payment is flagged for staff); the notice is kept, flagged.
    foreign = next((ref for ref in (event.gateway_reference, event.result.reference) if reference_mismatch(payment, ref)), "")
    result = replace(event.result, reference=foreign) if foreign else event.result
    if event.captured_if_requested and result.status is GatewayStatus.AUTHORIZED and payment.capture:
        result = replace(result, status=GatewayStatus.SUCCEEDED)  # PGI asked for the capture with it
    after = payment_apply_gateway_result(
        payment_id=payment.id,
        operation=event.operation,
        result=result,
        source=PaymentStatusChange.Source.WEBHOOK,
        reason=f"{gateway} notice {event.raw_type or event.operation.value}",
    )
    if foreign:
        return Outcome.FLAGGED, clip(reference_mismatch(payment, foreign), 255)
    if after.needs_attention and (True, after.attention_code, after.attention_reason) != attention_before:
        return Outcome.FLAGGED, clip(after.attention_reason, 255)  # flagged now (a flag already up may stay)
    if (after.status, after.pending_operation) != before:
        return Outcome.APPLIED, f"{before[0]} → {after.status}"
    return Outcome.IGNORED, f"payment is {after.status}; nothing to change"


def _payment_for(gateway: str, event: WebhookEvent) -> tuple[Payment | None, str]:
    """The payment of this gateway the notice names (by PGI id, else by gateway reference), or
    None and why none matched."""
    payments = Payment.objects.filter(gateway=gateway)
    if event.payment_id:
        payment = payments.filter(pk=event.payment_id).first()
        if payment is not None:
            return payment, ""
    if event.gateway_reference:
        payment = payments.filter(gateway_reference=event.gateway_reference).first()
        if payment is not None:
            return payment, ""
    elsewhere = Payment.objects.filter(pk=event.payment_id).values_list("gateway", flat=True).first()
    if elsewhere is not None:
        return None, f"payment {event.payment_id} is routed to {elsewhere or 'no gateway'}"
    return None, "no payment of this gateway has this reference"
