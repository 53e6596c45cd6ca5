"""What a gateway said about a payment, applied to it: an answer, a webhook, a status query.

Every answer is decided and written under one lock of the payment's row (payment_apply_gateway_result),
by a small function per operation. Each moves the payment only forward from the statuses it may
follow; from any other status it changes nothing, so duplicates and late or out-of-order notices
never move a payment backwards (an `authorized` notice after the capture's does not undo the
capture). An answer that contradicts PGI's record moves nothing and flags the payment for staff
(payment_flag_locked); that flag stays until staff clear it, even when a later, consistent answer
moves the payment on. A flag that only said recovery had no final answer ends with the move: the
gateway has answered. The first answer that carries a gateway reference fills it in; no later one
overwrites it.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateways.base import GatewayResult, GatewayStatus, Operation
from pgi.compiled import insert_rows, writes_together
from pgi.money import format_money, is_storable_amount
from pgi.text import clip

from ..models import FOLLOW_UPS, AttentionCode, GatewayAttempt, GatewayOperation, OperationKind, OperationStatus, Payment, PaymentStatus
from .core import note_locked, payment_lock, transition_locked, unsaved_keep, unsaved_save
from .operations import operation_finish, operation_in_flight, operation_look_later, operations_open, operations_open_read

logger = logging.getLogger(__name__)

EXPIRED = {
    "failure_code": "AUTHORIZATION_EXPIRED",
    "failure_message": "The authorization expired before it was captured.",
}

PROCESSING = frozenset({PaymentStatus.PROCESSING})
AUTHORIZED = frozenset({PaymentStatus.AUTHORIZED})


@dataclass
class Answer:
    """One gateway answer about a locked payment, and the operation in flight it may end."""

    payment: Payment
    operation: Operation
    result: GatewayResult
    source: str
    reason: str
    in_flight: GatewayOperation | None

    @property
    def amount(self) -> Decimal:
        return self.payment.amount if self.result.amount is None else self.result.amount

    def move(self, to_status: str, only_from: frozenset, why: str, **fields) -> Payment:
        return transition_locked(
            self.payment,
            to_status=to_status,
            source=self.source,
            reason=self.reason or why,
            only_from=only_from,
            answered=True,
            **fields,
        )

    def end_in_flight(self, why: str) -> Payment:
        """The operation in flight ended without moving the payment (the gateway refused it). Only
        an answer about that operation ends it: a late capture refusal leaves a void in flight."""
        if self.in_flight is None or self.in_flight.kind != self.operation.value:
            return self.payment
        operation_finish(self.in_flight, OperationStatus.FAILED)
        return note_locked(self.payment, source=self.source, reason=why, answered=True)

    def flag(self, code: AttentionCode, why: str) -> Payment:
        return payment_flag_locked(self.payment, source=self.source, code=code, why=why)


def _authorization_expiry():
    return timezone.now() + timedelta(hours=settings.PGI_AUTHORIZATION_TTL_HOURS)


def payment_flag_locked(payment: Payment, *, source: str, code: AttentionCode, why: str) -> Payment:
    """Stop and ask staff: PGI's record and the gateway's disagree in a way no rule may settle, or
    recovery has no final answer (NO_FINAL_ANSWER). The operation in flight gets no more looks
    until staff restart recovery. Call it under the payment's row lock."""
    logger.warning("payment %s flagged for staff (%s): %s", payment.id, code, why)
    in_flight = operation_in_flight(payment)
    if in_flight is not None:
        operation_look_later(in_flight, look_at=None)
    return note_locked(
        payment,
        source=source,
        reason=f"flagged for staff: {why}",
        needs_attention=True,
        attention_reason=clip(why, 255),
        attention_code=code,
    )


def reference_mismatch(payment: Payment, reference: str) -> str:
    """Why an answer carrying `reference` is not about this payment ('' when it may be): once the
    payment has a gateway reference, an answer naming another one belongs to another payment."""
    if reference and payment.gateway_reference and reference != payment.gateway_reference:
        return f"an answer for gateway reference {clip(reference, 40)}, but the payment's is {payment.gateway_reference}"
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
            f"{operation.value} answer in {clip(result.currency, 12)} for a {payment.currency} payment",
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


@transaction.atomic
def payment_apply_gateway_result(
    *,
    payment_id: str,
    operation: Operation,
    result: GatewayResult,
    source: str,
    reason: str = "",
    attempts: tuple[GatewayAttempt, ...] = (),
) -> Payment:
    """Apply what a gateway said about a payment, decided and written under one row lock (see the
    module's docstring for the rules). `attempts` (the call's GatewayAttempt, not saved yet: see
    calls.gateway_call's `record_in`) are written in the same commit.

    The payment's operations are read once under the lock, and a new gateway reference is written
    with the status in one UPDATE. The payment returned knows its pendingOperation."""
    payment = payment_lock(payment_id)
    try:
        if result.reference and not payment.gateway_reference:
            payment.gateway_reference = clip(result.reference, 128)
            unsaved_keep(payment, "gateway_reference")
        operations_open_read(payment)
        # The attempts, the payment, its operations, history and announcements: in this transaction.
        with writes_together(savepoint=False):
            if attempts:
                insert_rows(list(attempts))
            answered = _apply(payment, operation, result, source, reason)
            unsaved_save(payment)
        # The response's pendingOperation, from the operations read under the lock (no query).
        answered.__dict__["pending_operation_kind"] = next(
            (op.kind for op in operations_open(payment) if op.kind in FOLLOW_UPS), None
        )
        return answered
    finally:
        payment.__dict__.pop("_operations_open", None)


def _apply(payment: Payment, operation: Operation, result: GatewayResult, source: str, reason: str) -> Payment:
    answer = Answer(payment, operation, result, source, reason, in_flight=operation_in_flight(payment))

    code, problem = _contradiction(payment, operation, result)
    if code is not None:
        if payment.status in (PaymentStatus.PROCESSING, PaymentStatus.AUTHORIZED) or answer.in_flight is not None:
            return answer.flag(code, problem)
        return payment  # a final payment: the notice is kept, reconciliation compares amounts
    try:
        apply = _APPLY[operation]
    except KeyError:
        raise ValueError(f"{operation} results are not applied to payments") from None
    return apply(answer, result.status)


def _authorization_answer(answer: Answer, status: GatewayStatus) -> Payment:
    """An answer to the authorization itself, or what a status query found."""
    payment, result = answer.payment, answer.result
    if status is GatewayStatus.SUCCEEDED:
        return answer.move(PaymentStatus.COMPLETED, PROCESSING, "charged", captured_amount=answer.amount)
    if status is GatewayStatus.AUTHORIZED:
        if payment.capture and payment.status == PaymentStatus.PROCESSING:
            return answer.flag(
                AttentionCode.AUTHORIZED_NOT_CAPTURED,
                "the gateway reports an authorization only, for a payment sent for immediate capture",
            )
        return answer.move(
            PaymentStatus.AUTHORIZED, PROCESSING, "authorized", authorization_expires_at=_authorization_expiry()
        )
    if status is GatewayStatus.DECLINED:
        return answer.move(
            PaymentStatus.FAILED,
            PROCESSING,
            "declined",
            failure_code=result.error_code or "DECLINED",
            failure_message=clip(result.error_message or "The payment was declined.", 255),
        )
    if status is GatewayStatus.CANCELLED:
        return _cancelled_at_gateway(answer)
    return payment  # pending: the outcome comes later; its reference is kept


def _capture_answer(answer: Answer, status: GatewayStatus) -> Payment:
    payment, result = answer.payment, answer.result
    if status is GatewayStatus.SUCCEEDED:
        # A capture confirmed before the authorization's own notice still ends Completed.
        return answer.move(
            PaymentStatus.COMPLETED,
            PROCESSING | AUTHORIZED,
            f"captured {format_money(answer.amount, payment.currency)}",
            captured_amount=answer.amount,
        )
    if status is GatewayStatus.DECLINED:
        if payment.status == PaymentStatus.COMPLETED:
            # The scheme rejected a capture the gateway had confirmed: the money did not move.
            return answer.flag(
                AttentionCode.CAPTURE_FAILED_AFTER_CONFIRMATION,
                f"the gateway reports the capture failed after confirming it: {result.error_code} "
                f"{result.error_message}".strip(),
            )
        return answer.end_in_flight(f"capture refused: {result.error_code or 'DECLINED'} {result.error_message}".strip())
    if status is GatewayStatus.CANCELLED:
        return _cancelled_at_gateway(answer)  # the hold was gone before the capture
    if status is GatewayStatus.AUTHORIZED:
        return answer.end_in_flight("capture not taken: the gateway still reports the payment authorized")
    return payment  # pending: the gateway's notice follows


def _void_answer(answer: Answer, status: GatewayStatus) -> Payment:
    payment, result = answer.payment, answer.result
    if status is GatewayStatus.CANCELLED:
        return _cancelled_at_gateway(answer)
    if status is GatewayStatus.SUCCEEDED:
        # Captured before the cancel arrived: the money moved, whatever was asked.
        return answer.move(
            PaymentStatus.COMPLETED,
            PROCESSING | AUTHORIZED,
            f"the gateway reports it captured ({format_money(answer.amount, payment.currency)}); "
            "the cancel came too late",
            captured_amount=answer.amount,
        )
    if status is GatewayStatus.DECLINED:
        return answer.end_in_flight(f"cancel refused: {result.error_code or 'DECLINED'} {result.error_message}".strip())
    if status is GatewayStatus.AUTHORIZED:
        return answer.end_in_flight("cancel not taken: the gateway still reports the payment authorized")
    return payment


def _cancelled_at_gateway(answer: Answer) -> Payment:
    """The gateway says the payment's hold is released (a void, an expiry, its own cancel)."""
    if answer.payment.status == PaymentStatus.AUTHORIZED:
        in_flight = answer.in_flight
        if in_flight is not None and in_flight.kind == OperationKind.VOID and in_flight.by_expiry:
            return answer.move(PaymentStatus.CANCELLED, AUTHORIZED, "authorization expired; released at the gateway", **EXPIRED)
        return answer.move(PaymentStatus.CANCELLED, AUTHORIZED, "authorization released")
    return answer.move(
        PaymentStatus.FAILED,
        PROCESSING,
        "cancelled at the gateway",
        failure_code="CANCELLED_AT_GATEWAY",
        failure_message="The gateway cancelled the payment; nothing was charged.",
    )


_APPLY = {
    Operation.AUTHORIZE: _authorization_answer,
    Operation.STATUS: _authorization_answer,
    Operation.CAPTURE: _capture_answer,
    Operation.VOID: _void_answer,
}
