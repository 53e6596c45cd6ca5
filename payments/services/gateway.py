"""Payments through gateways: routing with failover, every call recorded, answers applied.

No gateway call runs inside a database transaction: a payment is committed as Processing before
its gateway is called, and what the gateway said is applied in a second, short transaction. A crash
in between leaves a Processing payment that recovery (payments.services.recovery) settles by asking
the gateway.
"""

import logging
import time
from datetime import timedelta
from typing import Callable, TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateways.base import (
    Connector,
    GatewayResult,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    Operation,
    PaymentRequest,
    RefundResult,
    idempotency_key,
)
from gateways.breaker import breaker_for
from gateways.registry import get_connector
from gateways.routing import gateways_for
from pgi.merchants.authentication import ApiPrincipal
from pgi.money import format_money

from ..models import GatewayAttempt, Payment, PaymentStatus, PaymentStatusChange
from .core import PaymentDraft, payment_create, payment_note, payment_transition

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source
Outcome = GatewayAttempt.Outcome
R = TypeVar("R", GatewayResult, RefundResult, GatewayResult | None)

UNAVAILABLE_MESSAGE = "The payment gateway is unavailable; nothing was charged. Try again later."


def recovery_due_from(moment=None):
    """When recovery first looks at a payment whose outcome is not known yet."""
    return (moment or timezone.now()) + timedelta(seconds=settings.PGI_RECOVERY["grace_seconds"])


def _attempt_outcome(result: GatewayResult | RefundResult | None) -> str:
    if result is None:
        return Outcome.NOT_FOUND
    status = result.status.value
    return {"failed": Outcome.DECLINED}.get(status, status)


def attempt_record(
    *,
    payment_id: str,
    operation: Operation,
    gateway: str,
    key: str,
    outcome: str,
    latency_ms: int = 0,
    gateway_reference: str = "",
    error_code: str = "",
    message: str = "",
) -> GatewayAttempt:
    return GatewayAttempt.objects.create(
        payment_id=payment_id,
        operation=operation.value,
        gateway=gateway,
        idempotency_key=key,
        outcome=outcome,
        latency_ms=latency_ms,
        gateway_reference=gateway_reference[:128],
        error_code=error_code[:64],
        message=message[:255],
    )


def gateway_call(
    *, payment_id: str, connector: Connector, operation: Operation, call: Callable[[], R], key: str | None = None
) -> R:
    """Run one call to a gateway, record it as a GatewayAttempt and tell the gateway's breaker.

    `key` is the idempotency key the call sends; by default the one derived from the payment id
    (a refund passes its own). Returns what the connector returned; re-raises GatewayUnavailable
    and GatewayTimeout (both count as failures for the breaker) and any unexpected error (a
    connector bug, recorded as `error` and not counted: the gateway may be fine).
    """
    if key is None:
        key = idempotency_key(operation if operation is not Operation.STATUS else Operation.AUTHORIZE, payment_id)
    breaker = breaker_for(connector.code)
    started = time.monotonic()

    def record(outcome: str, **fields) -> None:
        latency_ms = int((time.monotonic() - started) * 1000)
        attempt_record(
            payment_id=payment_id,
            operation=operation,
            gateway=connector.code,
            key=key,
            outcome=outcome,
            latency_ms=latency_ms,
            **fields,
        )

    try:
        result = call()
    except GatewayUnavailable as exc:
        breaker.record_failure()
        record(Outcome.UNAVAILABLE, message=str(exc))
        raise
    except GatewayTimeout as exc:
        breaker.record_failure()
        record(Outcome.TIMEOUT, message=str(exc))
        raise
    except Exception as exc:
        record(Outcome.ERROR, message=f"{type(exc).__name__}: {exc}")
        raise
    breaker.record_success()
    record(
        _attempt_outcome(result),
        gateway_reference=getattr(result, "reference", ""),
        error_code=getattr(result, "error_code", ""),
        message=getattr(result, "error_message", ""),
    )
    return result


def payment_request_for(payment: Payment) -> PaymentRequest:
    return PaymentRequest(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        from_account=payment.from_account,
        merchant_code=payment.merchant.code,
        description=payment.description,
        capture=payment.capture,
    )


def payment_process(*, draft: PaymentDraft, principal: ApiPrincipal) -> Payment:
    """Create the payment and take it through the first gateway that can take it.

    The gateways come from the merchant's routes for the currency. A gateway whose circuit is open
    is skipped; one that is unavailable (nothing happened there) hands over to the next. A decline
    is final. A timeout stops the failover and leaves the payment Processing: the gateway may have
    charged, and charging at a second gateway could take the money twice. Recovery then asks the
    gateway that timed out. With no gateway left, the payment fails with GATEWAY_UNAVAILABLE.
    """
    codes = gateways_for(merchant_id=draft.merchant.pk, currency=draft.currency)
    with transaction.atomic():  # one commit for both steps; each keeps its history line
        payment = payment_create(draft=draft, principal=principal)
        payment = payment_transition(
            payment_id=payment.id,
            to_status=PaymentStatus.PROCESSING,
            source=Source.SYSTEM,
            reason=_routing_reason(codes),
            gateway=codes[0] if codes else "",
            next_recovery_at=recovery_due_from(),
        )
    return _authorize_with_failover(payment, codes)


def _routing_reason(codes: list[str]) -> str:
    if not codes:
        return "no active gateway route"
    if len(codes) == 1:
        return f"sent to {codes[0]}"
    return f"sent to {codes[0]} (then {', '.join(codes[1:])} if unavailable)"


def _authorize_with_failover(payment: Payment, codes: list[str]) -> Payment:
    request = payment_request_for(payment)
    passed: list[str] = []
    for code in codes:
        connector = get_connector(code)
        if not breaker_for(code).allow():
            attempt_record(
                payment_id=payment.id,
                operation=Operation.AUTHORIZE,
                gateway=code,
                key=idempotency_key(Operation.AUTHORIZE, payment.id),
                outcome=Outcome.CIRCUIT_OPEN,
                message="not called: its circuit breaker is open",
            )
            passed.append(f"{code}: circuit open")
            continue
        if code != payment.gateway:
            payment = payment_note(
                payment_id=payment.id,
                source=Source.SYSTEM,
                reason=f"failover to {code} ({'; '.join(passed)})",
                gateway=code,
            )
        try:
            result = gateway_call(
                payment_id=payment.id,
                connector=connector,
                operation=Operation.AUTHORIZE,
                call=lambda: connector.authorize(request),
            )
        except GatewayUnavailable as exc:
            logger.warning("gateway %s unavailable for %s: %s", code, payment.id, exc)
            passed.append(f"{code}: unavailable")
            continue
        except GatewayTimeout as exc:
            logger.warning("gateway %s timed out on %s: %s", code, payment.id, exc)
            return payment_note(
                payment_id=payment.id,
                source=Source.GATEWAY,
                reason=f"{code} timed out; outcome unknown, recovery will ask {code}",
            )
        return payment_apply_gateway_result(
            payment_id=payment.id, operation=Operation.AUTHORIZE, result=result, source=Source.GATEWAY
        )
    # Every gateway was unavailable or kept out: nothing was charged anywhere, so failing is safe.
    return payment_transition(
        payment_id=payment.id,
        to_status=PaymentStatus.FAILED,
        source=Source.GATEWAY if codes else Source.SYSTEM,
        reason=("no gateway available: " + "; ".join(passed)) if codes else "no active gateway route",
        only_from=frozenset({PaymentStatus.PROCESSING}),
        failure_code="GATEWAY_UNAVAILABLE",
        failure_message=UNAVAILABLE_MESSAGE,
    )


def _authorization_expiry():
    return timezone.now() + timedelta(hours=settings.PGI_AUTHORIZATION_TTL_HOURS)


def _clear_pending() -> dict:
    return {"pending_operation": "", "pending_amount": None, "pending_since": None}


def payment_apply_gateway_result(
    *,
    payment_id: str,
    operation: Operation,
    result: GatewayResult,
    source: str,
    reason: str = "",
    changes: dict | None = None,
) -> Payment:
    """Apply what a gateway said about a payment: its answer, a webhook, a status query.

    Each answer may move the payment only forward from the statuses it can follow; from any other
    status it is returned unchanged, so duplicates and late or out-of-order notifications change
    nothing (an `authorized` notification arriving after the capture's does not undo the capture).
    A move also clears the recovery flag: the gateway has answered. `changes` are applied with a
    move (the expiry job marks its cancels).
    """
    reference = {"gateway_reference": result.reference} if result.reference else {}
    processing = frozenset({PaymentStatus.PROCESSING})
    authorized = frozenset({PaymentStatus.AUTHORIZED})
    status = result.status

    def move(to_status: str, only_from: frozenset, why: str, **fields) -> Payment:
        return payment_transition(
            payment_id=payment_id,
            to_status=to_status,
            source=source,
            reason=reason or why,
            only_from=only_from,
            needs_attention=False,
            attention_reason="",
            **reference,
            **fields,
            **(changes or {}),
        )

    if operation in (Operation.AUTHORIZE, Operation.STATUS):
        if status is GatewayStatus.SUCCEEDED:
            payment = Payment.objects.only("amount").get(pk=payment_id)
            return move(PaymentStatus.COMPLETED, processing, "charged", captured_amount=result.amount or payment.amount)
        if status is GatewayStatus.AUTHORIZED:
            return move(PaymentStatus.AUTHORIZED, processing, "authorized", authorization_expires_at=_authorization_expiry())
        if status is GatewayStatus.DECLINED:
            return move(
                PaymentStatus.FAILED,
                processing,
                "declined",
                failure_code=result.error_code or "DECLINED",
                failure_message=(result.error_message or "The payment was declined.")[:255],
            )
        if status is GatewayStatus.CANCELLED:
            current = Payment.objects.only("status").get(pk=payment_id).status
            if current == PaymentStatus.AUTHORIZED:
                return move(PaymentStatus.CANCELLED, authorized, "authorization cancelled at the gateway", **_clear_pending())
            return move(
                PaymentStatus.FAILED,
                processing,
                "cancelled at the gateway",
                failure_code="CANCELLED_AT_GATEWAY",
                failure_message="The gateway cancelled the payment; nothing was charged.",
            )
        return _remember_reference(payment_id, result.reference)

    if operation is Operation.CAPTURE:
        if status is GatewayStatus.SUCCEEDED:
            payment = Payment.objects.only("amount", "pending_amount", "currency").get(pk=payment_id)
            captured = result.amount or payment.pending_amount or payment.amount
            # A capture confirmed before the authorization's own notice still ends Completed.
            return move(
                PaymentStatus.COMPLETED,
                processing | authorized,
                f"captured {format_money(captured, payment.currency)}",
                captured_amount=captured,
                **_clear_pending(),
            )
        if status is GatewayStatus.DECLINED:
            payment = payment_note(
                payment_id=payment_id,
                source=source,
                reason=f"capture refused: {result.error_code or 'DECLINED'} {result.error_message}".strip(),
                only_if={"pending_operation": Operation.CAPTURE.value},
                **_clear_pending(),
            )
            return payment or Payment.objects.select_related("merchant").get(pk=payment_id)
        return Payment.objects.select_related("merchant").get(pk=payment_id)  # pending: the webhook follows

    if operation is Operation.VOID:
        if status is GatewayStatus.CANCELLED:
            return move(PaymentStatus.CANCELLED, authorized, "authorization released", **_clear_pending())
        if status is GatewayStatus.DECLINED:
            payment = payment_note(
                payment_id=payment_id,
                source=source,
                reason=f"cancel refused: {result.error_code or 'DECLINED'} {result.error_message}".strip(),
                only_if={"pending_operation": Operation.VOID.value},
                **_clear_pending(),
            )
            return payment or Payment.objects.select_related("merchant").get(pk=payment_id)
        return Payment.objects.select_related("merchant").get(pk=payment_id)

    raise ValueError(f"{operation} results are not applied to payments")


def _remember_reference(payment_id: str, reference: str) -> Payment:
    """Pending at the gateway: keep its reference (status queries need it); the outcome comes later."""
    if reference:
        Payment.objects.filter(pk=payment_id, status=PaymentStatus.PROCESSING, gateway_reference="").update(
            gateway_reference=reference, updated_at=timezone.now()
        )
    return Payment.objects.select_related("merchant").get(pk=payment_id)
