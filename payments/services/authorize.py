"""Taking a payment: routing with failover, the authorization sent as one operation.

The payment is committed as Processing, with its authorization as a pending operation (key: the
payment id), before any gateway is called; the answer is applied in a second transaction
(payments.services.answers). A crash in between leaves the operation pending, and recovery asks.
"""

import logging
from typing import Callable

from django.db import transaction

from gateways.base import GatewayTimeout, GatewayUnavailable, Operation, PaymentRequest, idempotency_key
from gateways.breaker import breaker_for
from gateways.registry import get_connector
from gateways.routing import gateways_for
from pgi.compiled import writes_together
from pgi.merchants.principals import Principal

from ..models import GatewayAttempt, OperationKind, OperationStatus, Payment, PaymentStatus, PaymentStatusChange
from .answers import payment_apply_gateway_result
from .calls import attempt_record, gateway_call, recovery_due_from
from .core import PaymentDraft, note_locked, payment_create_processing, payment_lock, payment_note, payment_transition
from .operations import operation_in_flight, operation_look_later, operation_start

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source
Outcome = GatewayAttempt.Outcome

UNAVAILABLE_MESSAGE = "The payment gateway is unavailable; nothing was charged. Try again later."


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
    # One commit: the payment, its two history lines and announcements, its operation, in one statement.
    with writes_together():
        payment = payment_create_processing(
            draft=draft, principal=principal, gateway=codes[0] if codes else "", reason=_routing_reason(codes)
        )
        operation_start(
            payment=payment,
            kind=OperationKind.AUTHORIZE,
            amount=payment.amount,
            key=idempotency_key(Operation.AUTHORIZE, payment.id),
            first_look_at=recovery_due_from(connector=get_connector(codes[0]) if codes else None),
        )
        if link is not None:
            link(payment)
    return _authorize_with_failover(payment, codes)


def _attempts_keep(attempts: list[GatewayAttempt]) -> None:
    for attempt in attempts:
        attempt.pk = None
        try:
            attempt.save(force_insert=True)
        except Exception:
            logger.exception("the attempt of %s could not be recorded", attempt.payment_id)


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
            moved = _fail_over(payment, code, connector, passed)
            if moved is None:
                logger.warning("payment %s settled elsewhere during failover; %s not tried", payment.id, code)
                return Payment.objects.select_related("merchant").get(pk=payment.id)
            payment = moved
        answered: list[GatewayAttempt] = []  # the answer's attempt, saved with the answer
        try:
            result = gateway_call(
                payment_id=payment.id,
                connector=connector,
                operation=Operation.AUTHORIZE,
                call=lambda: connector.authorize(request),
                record_in=answered,
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
        try:
            return payment_apply_gateway_result(
                payment_id=payment.id,
                operation=Operation.AUTHORIZE,
                result=result,
                source=Source.GATEWAY,
                attempts=tuple(answered),
            )
        except BaseException:
            _attempts_keep(answered)  # the answer was not applied; the call still happened
            raise
    # Every gateway was unavailable or kept out: nothing was charged anywhere, so failing is safe.
    return payment_transition(
        payment_id=payment.id,
        to_status=PaymentStatus.FAILED,
        source=Source.GATEWAY if codes else Source.SYSTEM,
        reason=("no gateway available: " + "; ".join(passed)) if codes else "no active gateway route",
        only_from=frozenset({PaymentStatus.PROCESSING}),
        finish={OperationKind.AUTHORIZE: OperationStatus.NOT_SENT},
        failure_code="GATEWAY_UNAVAILABLE",
        failure_message=UNAVAILABLE_MESSAGE,
    )


@transaction.atomic
def _fail_over(payment: Payment, code: str, connector, passed: list[str]) -> Payment | None:
    """Take the next hop only if the payment is still ours to send: Processing and at the gateway
    just tried. Each hop renews the wait that keeps recovery away. None if it settled meanwhile."""
    locked = payment_lock(payment.id)
    operation = operation_in_flight(locked)
    if locked.status != PaymentStatus.PROCESSING or locked.gateway != payment.gateway or operation is None:
        return None
    operation_look_later(operation, look_at=recovery_due_from(connector=connector))
    return note_locked(locked, source=Source.SYSTEM, reason=f"failover to {code} ({'; '.join(passed)})", gateway=code)


