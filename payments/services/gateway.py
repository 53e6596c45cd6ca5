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
    SHAPE_ERRORS,
    Operation,
    PaymentRequest,
    RefundResult,
    UnreadableAnswer,
    idempotency_key,
    shape_problem,
)
from gateways.breaker import breaker_for
from gateways.registry import get_connector
from gateways.routing import gateways_for
from pgi.merchants.principals import Principal
from pgi.money import format_money, is_storable_amount

from ..models import AttentionCode, GatewayAttempt, Payment, PaymentStatus, PaymentStatusChange
from .core import PaymentDraft, payment_create, payment_note, payment_transition

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source
Outcome = GatewayAttempt.Outcome
R = TypeVar("R", GatewayResult, RefundResult, GatewayResult | None)

UNAVAILABLE_MESSAGE = "The payment gateway is unavailable; nothing was charged. Try again later."


def recovery_due_from(moment=None, connector: Connector | None = None):
    """When recovery may first look at a payment whose outcome is not known yet.

    Never before a call to `connector` that starts at `moment` has certainly given up: while the
    request may still be waiting on the gateway it owns the payment, and a recovery re-send then
    could race it (and, after an unavailable answer, the request's failover) into a second charge.
    """
    wait = settings.PGI_RECOVERY["grace_seconds"]
    if connector is not None:
        wait = max(wait, connector.max_call_seconds + 30)
    return (moment or timezone.now()) + timedelta(seconds=wait)


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
        gateway_reference=_text(gateway_reference, 128),
        error_code=_text(error_code, 64),
        message=_text(message, 255),
    )


def _text(value, limit: int) -> str:
    """Text as a column holds it: a gateway's words may carry NUL or lone surrogates."""
    text = value if isinstance(value, str) else str(value or "")
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:limit]


def gateway_call(
    *, payment_id: str, connector: Connector, operation: Operation, call: Callable[[], R], key: str | None = None
) -> R:
    """Run one call to a gateway, record it as a GatewayAttempt and tell the gateway's breaker.

    `key` is the idempotency key the call sends; by default the one derived from the payment id
    (a refund passes its own). Returns what the connector returned; re-raises GatewayUnavailable
    and GatewayTimeout (both count as failures for the breaker, unless staged: `counts_for_breaker`). An answer the connector cannot
    read (it raised KeyError, TypeError, … reading it, or returned a result whose fields do not fit)
    leaves the outcome unknown: recorded as a timeout and raised as UnreadableAnswer (a
    GatewayTimeout, so recovery asks later; not counted: the gateway answered). Any other error (a
    connector bug) is recorded as `error` and re-raised.
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
        if exc.counts_for_breaker:
            breaker.record_failure()
        record(Outcome.UNAVAILABLE, message=str(exc))
        raise
    except UnreadableAnswer as exc:
        record(Outcome.TIMEOUT, message=str(exc))
        raise
    except GatewayTimeout as exc:
        if exc.counts_for_breaker:
            breaker.record_failure()
        record(Outcome.TIMEOUT, message=str(exc))
        raise
    except SHAPE_ERRORS as exc:
        logger.warning("%s %s of %s: unreadable answer", connector.code, operation.value, payment_id, exc_info=True)
        unreadable = UnreadableAnswer(f"{connector.code} answered in a shape PGI cannot read ({type(exc).__name__}: {exc})")
        record(Outcome.TIMEOUT, message=str(unreadable))
        raise unreadable from exc
    except Exception as exc:
        record(Outcome.ERROR, message=f"{type(exc).__name__}: {exc}")
        raise
    problem = shape_problem(result) if result is not None else ""
    if problem:
        unreadable = UnreadableAnswer(f"{connector.code} answered in a shape PGI cannot read: {problem}")
        record(Outcome.TIMEOUT, message=str(unreadable))
        raise unreadable
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


def payment_process(
    *, draft: PaymentDraft, principal: Principal, link: Callable[[Payment], None] | None = None
) -> Payment:
    """Create the payment and take it through the first gateway that can take it.

    The gateways come from the merchant's routes for the currency. A gateway whose circuit is open
    is skipped; one that is unavailable (nothing happened there) hands over to the next. A decline
    is final. A timeout stops the failover and leaves the payment Processing: the gateway may have
    charged, and charging at a second gateway could take the money twice. Recovery then asks the
    gateway that timed out. With no gateway left, the payment fails with GATEWAY_UNAVAILABLE.
    `link(payment)` runs inside the commit that creates the payment, before any gateway call: what
    the caller records there (an Idempotency-Key's claim) commits with the payment or not at all.
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
            next_recovery_at=recovery_due_from(connector=get_connector(codes[0]) if codes else None),
        )
        if link is not None:
            link(payment)
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
            # Take the next hop only if the payment is still ours to send: Processing and at the
            # gateway we just tried. Each hop renews the lease that keeps recovery away.
            moved = payment_note(
                payment_id=payment.id,
                source=Source.SYSTEM,
                reason=f"failover to {code} ({'; '.join(passed)})",
                only_if={"status": PaymentStatus.PROCESSING, "gateway": payment.gateway},
                gateway=code,
                next_recovery_at=recovery_due_from(connector=connector),
            )
            if moved is None:
                logger.warning("payment %s settled elsewhere during failover; %s not tried", payment.id, code)
                return Payment.objects.select_related("merchant").get(pk=payment.id)
            payment = moved
        try:
            result = gateway_call(
                payment_id=payment.id,
                connector=connector,
                operation=Operation.AUTHORIZE,
                call=lambda: connector.authorize(request),
            )
        except GatewayUnavailable as exc:
            # A failure staged by a test value is expected: no warning for it.
            level = logging.WARNING if exc.counts_for_breaker else logging.INFO
            logger.log(level, "gateway %s unavailable for %s: %s", code, payment.id, exc)
            passed.append(f"{code}: unavailable")
            continue
        except GatewayTimeout as exc:
            level = logging.WARNING if exc.counts_for_breaker else logging.INFO
            logger.log(level, "gateway %s timed out on %s: %s", code, payment.id, exc)
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


CLEAR_PENDING = {
    "pending_operation": "",
    "pending_amount": None,
    "pending_since": None,
    "pending_key": "",
    "pending_expiry": False,
}
EXPIRED = {
    "failure_code": "AUTHORIZATION_EXPIRED",
    "failure_message": "The authorization expired before it was captured.",
}

PROCESSING = frozenset({PaymentStatus.PROCESSING})
AUTHORIZED = frozenset({PaymentStatus.AUTHORIZED})


def payment_flag(*, payment_id: str, source: str, code: AttentionCode, why: str, **changes) -> Payment:
    """Stop and ask staff: PGI's record and the gateway's disagree in a way no rule may settle.
    The flag stays until staff clear it, whatever the gateway says next (AttentionCode)."""
    logger.warning("payment %s flagged for staff (%s): %s", payment_id, code, why)
    return payment_note(
        payment_id=payment_id,
        source=source,
        reason=f"flagged for staff: {why}",
        needs_attention=True,
        attention_reason=why[:255],
        attention_code=code,
        next_recovery_at=None,
        **changes,
    )


def reference_mismatch(payment: Payment, reference: str) -> str:
    """Why an answer carrying `reference` is not about this payment ('' when it may be): once the
    payment has a gateway reference, an answer naming another one belongs to another payment."""
    if reference and payment.gateway_reference and reference != payment.gateway_reference:
        return f"an answer for gateway reference {reference[:40]}, but the payment's is {payment.gateway_reference}"
    return ""


def _contradiction(payment: Payment, operation: Operation, result: GatewayResult) -> tuple[AttentionCode | None, str]:
    """Why the gateway's answer cannot be applied to this payment as it stands: (code, why), or
    (None, '')."""
    mismatch = reference_mismatch(payment, result.reference)
    if mismatch:
        return AttentionCode.REFERENCE_MISMATCH, f"{operation.value}: {mismatch}"
    if result.status not in (GatewayStatus.SUCCEEDED, GatewayStatus.AUTHORIZED):
        return None, ""  # a refusal or a pending answer moves no money; its amount is not PGI's to check
    if result.currency and result.currency.upper() != payment.currency:
        return (
            AttentionCode.CURRENCY_MISMATCH,
            f"{operation.value} answer in {result.currency[:12]} for a {payment.currency} payment",
        )
    if result.amount is not None:
        # is_storable_amount also refuses more decimals than the column keeps: never round money.
        if not (0 < result.amount <= payment.amount and is_storable_amount(result.amount)):
            return (
                AttentionCode.AMOUNT_MISMATCH,
                f"{operation.value} answer of {result.amount} {payment.currency} "
                f"for a payment of {format_money(payment.amount, payment.currency)}",
            )
    return None, ""


def payment_apply_gateway_result(
    *,
    payment_id: str,
    operation: Operation,
    result: GatewayResult,
    source: str,
    reason: str = "",
) -> Payment:
    """Apply what a gateway said about a payment: its answer, a webhook, a status query.

    Each answer moves the payment only forward from the statuses it may follow; from any other
    status it changes nothing, so duplicates and late or out-of-order notices never move a payment
    backwards (an `authorized` notice after the capture's does not undo the capture). An answer
    that contradicts PGI's record (another currency, an amount outside the payment, a capture
    refused after it was confirmed, an authorization for a payment that asked for immediate
    capture, another gateway reference than the payment's) moves nothing and flags the payment for
    staff; that flag stays until staff clear it, even when a later, consistent answer moves the
    payment on. A flag that only said recovery had no final answer ends with the move: the gateway
    has answered. The first answer that carries a gateway reference fills it in; no later one
    overwrites it.
    """
    payment = Payment.objects.select_related("merchant").get(pk=payment_id)
    status = result.status
    if result.reference and not payment.gateway_reference:
        payment = _remember_reference(payment_id, result.reference)

    def move(to_status: str, only_from: frozenset, why: str, **fields) -> Payment:
        return payment_transition(
            payment_id=payment_id,
            to_status=to_status,
            source=source,
            reason=reason or why,
            only_from=only_from,
            answered=True,
            **fields,
        )

    def settle_pending(why: str) -> Payment:
        """The operation in flight ended without moving the payment (the gateway refused it). Only
        an answer about that operation ends it: a late capture refusal leaves a void in flight."""
        if payment.pending_operation != operation.value:
            return payment
        settled = payment_note(
            payment_id=payment_id,
            source=source,
            reason=why,
            only_if={"pending_operation": operation.value},
            answered=True,
            **CLEAR_PENDING,
        )
        return settled or payment

    code, problem = _contradiction(payment, operation, result)
    if code is not None:
        if payment.status in (PaymentStatus.PROCESSING, PaymentStatus.AUTHORIZED) or payment.pending_operation:
            return payment_flag(payment_id=payment_id, source=source, code=code, why=problem)
        return payment  # a final payment: the notice is kept, reconciliation compares amounts

    amount = payment.amount if result.amount is None else result.amount

    if operation in (Operation.AUTHORIZE, Operation.STATUS):
        if status is GatewayStatus.SUCCEEDED:
            return move(PaymentStatus.COMPLETED, PROCESSING, "charged", captured_amount=amount)
        if status is GatewayStatus.AUTHORIZED:
            if payment.capture and payment.status == PaymentStatus.PROCESSING:
                return payment_flag(
                    payment_id=payment_id,
                    source=source,
                    code=AttentionCode.AUTHORIZED_NOT_CAPTURED,
                    why="the gateway reports an authorization only, for a payment sent for immediate capture",
                )
            return move(PaymentStatus.AUTHORIZED, PROCESSING, "authorized", authorization_expires_at=_authorization_expiry())
        if status is GatewayStatus.DECLINED:
            return move(
                PaymentStatus.FAILED,
                PROCESSING,
                "declined",
                failure_code=result.error_code or "DECLINED",
                failure_message=(result.error_message or "The payment was declined.")[:255],
            )
        if status is GatewayStatus.CANCELLED:
            return _cancelled_at_gateway(payment, move)
        return payment  # pending: the outcome comes later; its reference is kept above

    if operation is Operation.CAPTURE:
        if status is GatewayStatus.SUCCEEDED:
            # A capture confirmed before the authorization's own notice still ends Completed.
            return move(
                PaymentStatus.COMPLETED,
                PROCESSING | AUTHORIZED,
                f"captured {format_money(amount, payment.currency)}",
                captured_amount=amount,
                **CLEAR_PENDING,
            )
        if status is GatewayStatus.DECLINED:
            if payment.status == PaymentStatus.COMPLETED:
                # The scheme rejected a capture the gateway had confirmed: the money did not move.
                return payment_flag(
                    payment_id=payment_id,
                    source=source,
                    code=AttentionCode.CAPTURE_FAILED_AFTER_CONFIRMATION,
                    why=f"the gateway reports the capture failed after confirming it: {result.error_code} "
                    f"{result.error_message}".strip(),
                )
            return settle_pending(f"capture refused: {result.error_code or 'DECLINED'} {result.error_message}".strip())
        if status is GatewayStatus.CANCELLED:
            return _cancelled_at_gateway(payment, move)  # the hold was gone before the capture
        if status is GatewayStatus.AUTHORIZED:
            return settle_pending("capture not taken: the gateway still reports the payment authorized")
        return payment  # pending: the gateway's notice follows

    if operation is Operation.VOID:
        if status is GatewayStatus.CANCELLED:
            return _cancelled_at_gateway(payment, move)
        if status is GatewayStatus.SUCCEEDED:
            # Captured before the cancel arrived: the money moved, whatever was asked.
            return move(
                PaymentStatus.COMPLETED,
                PROCESSING | AUTHORIZED,
                f"the gateway reports it captured ({format_money(amount, payment.currency)}); the cancel came too late",
                captured_amount=amount,
                **CLEAR_PENDING,
            )
        if status is GatewayStatus.DECLINED:
            return settle_pending(f"cancel refused: {result.error_code or 'DECLINED'} {result.error_message}".strip())
        if status is GatewayStatus.AUTHORIZED:
            return settle_pending("cancel not taken: the gateway still reports the payment authorized")
        return payment

    raise ValueError(f"{operation} results are not applied to payments")


def _cancelled_at_gateway(payment: Payment, move) -> Payment:
    """The gateway says the payment's hold is released (a void, an expiry, its own cancel)."""
    if payment.status == PaymentStatus.AUTHORIZED:
        if payment.pending_expiry:
            return move(PaymentStatus.CANCELLED, AUTHORIZED, "authorization expired; released at the gateway", **EXPIRED, **CLEAR_PENDING)
        return move(PaymentStatus.CANCELLED, AUTHORIZED, "authorization released", **CLEAR_PENDING)
    return move(
        PaymentStatus.FAILED,
        PROCESSING,
        "cancelled at the gateway",
        failure_code="CANCELLED_AT_GATEWAY",
        failure_message="The gateway cancelled the payment; nothing was charged.",
    )


def _remember_reference(payment_id: str, reference: str) -> Payment:
    """Keep the gateway's reference of a payment that has none yet (status queries, captures and
    webhooks need it); a conditional update, so of two racing answers only the first is kept."""
    Payment.objects.filter(pk=payment_id, gateway_reference="").update(
        gateway_reference=reference[:128], updated_at=timezone.now()
    )
    return Payment.objects.select_related("merchant").get(pk=payment_id)
