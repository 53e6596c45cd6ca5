"""Authorize now, capture or cancel later: payments created with `capture: false`.

A capture or cancel first claims the payment (a pending GatewayOperation with its own idempotency
key, under the payment's row lock, committed), then calls the gateway outside any transaction, then
applies the answer. The claim keeps a second
capture or cancel out while the first is in flight. When the gateway is unavailable the claim is
released (nothing happened there); when it times out the claim stays and recovery re-sends the same
operation with the same idempotency key; when the gateway confirms later (PENDING) its webhook
settles it.
"""

import logging
from decimal import Decimal
from typing import Callable

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from gateways.base import (
    CaptureRequest,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    Operation,
    VoidRequest,
)
from gateways.breaker import breaker_for
from gateways.registry import UnknownGateway, get_connector
from pgi.errors import BusinessRuleViolation, Conflict, ErrorDetail, ServiceUnavailable, ValidationFailed
from pgi.money import currency_exponent, fits_currency, format_money, quantize

from ..models import GatewayAttempt, GatewayOperation, OperationKind, OperationStatus, Payment, PaymentStatus, PaymentStatusChange
from .answers import EXPIRED, payment_apply_gateway_result
from .calls import attempt_record, gateway_call, recovery_due_from
from .core import note_locked, payment_lock, payment_note, payment_transition
from .operations import operation_finish, operation_in_flight, operation_key_next, operation_start

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source
# A caller's hook, run with the payment inside the commit that marks its capture or void as sent.
Link = Callable[[Payment], None] | None


class OperationRefused(Conflict):
    """409: the payment's status (or an operation in flight) does not allow this."""


class OperationDeclined(BusinessRuleViolation):
    """422: the gateway refused the capture or cancel; the payment is as it was."""

    gateway_status: GatewayStatus = GatewayStatus.DECLINED


def _refusal(payment: Payment, operation: Operation) -> OperationRefused:
    pending = payment.pending_operation
    if pending:
        return OperationRefused(f"A {pending} of this payment is already in progress.", code="OPERATION_IN_PROGRESS")
    return OperationRefused(
        f"A {payment.status} payment cannot be {'captured' if operation is Operation.CAPTURE else 'cancelled'}; "
        "only an Authorized one can.",
        code="PAYMENT_NOT_CAPTURABLE" if operation is Operation.CAPTURE else "PAYMENT_NOT_CANCELLABLE",
    )


@transaction.atomic
def _claim(
    *, payment: Payment, operation: Operation, amount: Decimal, source: str, connector, expiry: bool, link: Link = None
) -> tuple[Payment, GatewayOperation]:
    """Take the payment for one capture or void under its row lock, or raise 409 saying why not.

    The claim is the operation's row: its own idempotency key (re-sends reuse it) and a first
    recovery look only after the call has certainly given up. `link(payment)` commits with it."""
    locked = payment_lock(payment.id)
    if locked.status != PaymentStatus.AUTHORIZED or operation_in_flight(locked) is not None:
        raise _refusal(locked, operation)
    sent = operation_start(
        payment=locked,
        kind=operation.value,
        amount=amount,
        key=operation_key_next(payment=locked, kind=operation.value),
        first_look_at=recovery_due_from(timezone.now(), connector),
        by_expiry=expiry,
    )
    note_locked(
        locked,
        source=source,
        reason=f"{operation.value} of {format_money(amount, locked.currency)} sent to {locked.gateway}"
        + (" (authorization expired)" if expiry else ""),
        # A new operation is a new question: a flag saying the last one had no answer ends here
        # (a contradiction's flag stays for staff).
        **({"needs_attention": False, "attention_reason": "", "attention_code": ""} if locked.flag_clears_on_answer else {}),
    )
    if link is not None:
        link(locked)
    return locked, sent


@transaction.atomic
def _release(*, payment: Payment, sent: GatewayOperation, reason: str) -> None:
    """The gateway could not be reached: nothing happened there, the claim ends as not sent."""
    locked = payment_lock(payment.id)
    sent.refresh_from_db()
    if sent.status != OperationStatus.PENDING:
        return
    operation_finish(sent, OperationStatus.NOT_SENT)
    note_locked(locked, source=Source.GATEWAY, reason=reason)


def operation_request(payment: Payment, sent: GatewayOperation) -> CaptureRequest | VoidRequest:
    """The request of a capture or void, with its own key: for the call and re-sends."""
    if sent.kind == OperationKind.CAPTURE:
        return CaptureRequest(
            payment_id=payment.id,
            gateway_reference=payment.gateway_reference,
            amount=sent.amount,
            currency=payment.currency,
            merchant_code=payment.merchant.code,
            idempotency_key=sent.idempotency_key,
        )
    return VoidRequest(
        payment_id=payment.id,
        gateway_reference=payment.gateway_reference,
        amount=payment.amount,
        currency=payment.currency,
        merchant_code=payment.merchant.code,
        idempotency_key=sent.idempotency_key,
    )


def operation_call(connector, request: CaptureRequest | VoidRequest):
    if isinstance(request, CaptureRequest):
        return lambda: connector.capture(request)
    return lambda: connector.void(request)


def _unavailable(code: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The payment's gateway {code} is unavailable; nothing was done. Try again later.",
        code="GATEWAY_UNAVAILABLE",
    )


def _send(
    *, payment: Payment, operation: Operation, amount: Decimal, source: str, expiry: bool = False, link: Link = None
) -> Payment:
    """Check, claim, call the payment's gateway, apply.

    Raises OperationRefused (409) when the payment's status or an operation in flight forbids it,
    ServiceUnavailable (503) when the gateway cannot be reached or is kept out by its breaker (the
    payment is then as it was), and OperationDeclined (422) when the gateway refused it.
    """
    if payment.status != PaymentStatus.AUTHORIZED or payment.pending_operation:
        raise _refusal(payment, operation)  # said early; the claim decides under the lock
    try:
        connector = get_connector(payment.gateway)
    except UnknownGateway:
        logger.error("payment %s is at gateway %r, which is not configured", payment.id, payment.gateway)
        raise _unavailable(payment.gateway) from None
    if not breaker_for(connector.code).allow():
        attempt_record(
            payment_id=payment.id,
            operation=operation,
            gateway=connector.code,
            key=operation_key_next(payment=payment, kind=operation.value),
            outcome=GatewayAttempt.Outcome.CIRCUIT_OPEN,
            message="not called: its circuit breaker is open",
        )
        raise _unavailable(connector.code)
    payment, sent = _claim(
        payment=payment,
        operation=operation,
        amount=amount,
        source=source,
        connector=connector,
        expiry=expiry,
        link=link,
    )
    request = operation_request(payment, sent)
    try:
        result = gateway_call(
            payment_id=payment.id,
            connector=connector,
            operation=operation,
            call=operation_call(connector, request),
            key=request.key,
        )
    except GatewayUnavailable as exc:
        _release(payment=payment, sent=sent, reason=f"{connector.code} unavailable: {exc}")
        raise _unavailable(connector.code) from exc
    except GatewayTimeout as exc:
        logger.warning("%s of %s timed out at %s: %s", operation.value, payment.id, connector.code, exc)
        return payment_note(
            payment_id=payment.id,
            source=Source.GATEWAY,
            reason=f"{operation.value} timed out at {connector.code}; recovery will re-send it",
        )
    payment = payment_apply_gateway_result(
        payment_id=payment.id, operation=operation, result=result, source=Source.GATEWAY
    )
    not_taken = result.status is GatewayStatus.AUTHORIZED and not payment.pending_operation
    if result.status is GatewayStatus.DECLINED or not_taken:
        verb = "capture" if operation is Operation.CAPTURE else "cancel"
        declined = OperationDeclined(
            f"The gateway refused the {verb}: "
            f"{result.error_message or result.error_code or ('it still holds the authorization' if not_taken else 'declined')}. "
            "The payment is still Authorized.",
            code=f"{verb.upper()}_DECLINED",
            details=[ErrorDetail("gateway", result.error_code or ("NOT_TAKEN" if not_taken else "DECLINED"))],
        )
        declined.gateway_status = result.status
        raise declined
    return payment


def _check_not_expired(payment: Payment) -> None:
    if payment.status == PaymentStatus.AUTHORIZED and payment.authorization_expires_at:
        if payment.authorization_expires_at <= timezone.now():
            raise OperationRefused(
                "The authorization has expired and can no longer be captured.", code="AUTHORIZATION_EXPIRED"
            )


def payment_capture(*, payment: Payment, amount: Decimal | None, link: Link = None) -> Payment:
    """Capture an Authorized payment in full (amount None) or in part.

    Raises ValidationFailed (more decimals than the currency has), BusinessRuleViolation (more than
    authorized), OperationRefused (409: not Authorized, expired, or an operation in flight) and
    ServiceUnavailable (503: the gateway cannot be reached; nothing changed). `link(payment)` runs
    inside the commit that marks the capture as sent, before the gateway call.
    """
    if amount is None:
        amount = payment.amount
    if not fits_currency(amount, payment.currency):
        exponent = currency_exponent(payment.currency)
        raise ValidationFailed(
            "The amount has more decimals than the currency allows.",
            details=[ErrorDetail("amount", f"{payment.currency} allows at most {exponent} decimal places.")],
        )
    if amount > payment.amount:
        raise BusinessRuleViolation(
            "The capture is larger than the authorized amount.",
            code="CAPTURE_EXCEEDS_AUTHORIZATION",
            details=[ErrorDetail("amount", f"At most {quantize(payment.amount, payment.currency)} {payment.currency}.")],
        )
    _check_not_expired(payment)
    return _send(
        payment=payment,
        operation=Operation.CAPTURE,
        amount=quantize(amount, payment.currency),
        source=Source.API,
        link=link,
    )


def payment_cancel(*, payment: Payment, source: str = Source.API, link: Link = None) -> Payment:
    """Release an Authorized payment's hold. Raises OperationRefused (409) and ServiceUnavailable (503).
    `link(payment)` runs inside the commit that marks the void as sent, before the gateway call."""
    return _send(payment=payment, operation=Operation.VOID, amount=payment.amount, source=source, link=link)


def authorizations_expire(*, limit: int = 100) -> int:
    """Cancel Authorized payments whose authorization has run out; returns how many were sent.

    Each is voided at its gateway through the same path as a cancel, so the gateway releases the
    hold now instead of whenever the issuer lets it lapse. A gateway that cannot be reached is
    tried again on the next run.
    """
    due = (
        Payment.objects.filter(status=PaymentStatus.AUTHORIZED, authorization_expires_at__lte=timezone.now())
        .exclude(Exists(GatewayOperation.objects.pending().follow_ups().filter(payment=OuterRef("pk"))))
        .order_by("authorization_expires_at")[:limit]
    )
    sent = 0
    for payment in due.select_related("merchant"):
        try:
            payment = _send(
                payment=payment, operation=Operation.VOID, amount=payment.amount, source=Source.SYSTEM, expiry=True
            )
        except (OperationRefused, ServiceUnavailable) as exc:
            logger.info("authorization of %s not expired this run: %s", payment.id, exc)
            continue
        except OperationDeclined as exc:
            if exc.gateway_status is not GatewayStatus.DECLINED:
                # The gateway says it still holds the authorization: try again on the next run.
                logger.warning("expiry of %s: the gateway still holds the authorization", payment.id)
                continue
            payment.refresh_from_db()
        sent += 1
        if payment.status == PaymentStatus.AUTHORIZED and not payment.pending_operation:
            # The gateway refused the void (already lapsed or unknown there): nothing can be
            # captured any more, so the payment ends Cancelled either way.
            payment_transition(
                payment_id=payment.id,
                to_status=PaymentStatus.CANCELLED,
                source=Source.SYSTEM,
                reason="authorization expired; the gateway no longer holds it",
                only_from=frozenset({PaymentStatus.AUTHORIZED}),
                **EXPIRED,
            )
    return sent
