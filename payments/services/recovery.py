"""Recovery: settle payments whose outcome PGI does not know, by asking their gateway.

A payment is due for recovery while it is Processing (the gateway timed out, PGI crashed between the
gateway call and its commit, or the gateway answered "pending" and its webhook has not come), or
while a capture or cancel is in flight: while a GatewayOperation holds it, pending. The beat job
claims a bounded batch of due operations (`select_for_update(skip_locked=True)`, and leases each
before any gateway call, so overlapping runs and several workers never work on the same payment),
then for each payment:

- Processing: ask the gateway for the payment's status. A final answer is applied. No record there
  (or no way to look it up) means the request may never have arrived: it is sent again with the same
  idempotency key, which the gateway answers with its first outcome if it had one, and never charges
  twice.
- a capture or cancel in flight: send it again with the same idempotency key.

Each look that does not settle the payment waits longer than the last (exponential backoff, capped).
After settings.PGI_RECOVERY["max_attempts"] looks the payment is flagged `needs_attention` for staff
(NO_FINAL_ANSWER: the gateway's next answer ends it), who see it in the admin and can start recovery
again. A flag for a contradiction (payments.services.gateway) is never replaced by this one.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from gateways.base import GatewayError, GatewayStatus, Operation
from gateways.breaker import breaker_for
from gateways.registry import UnknownGateway, get_connector
from pgi.audit.actors import Actor
from pgi.audit.services import audit_record

from ..models import AttentionCode, GatewayOperation, OperationKind, Payment, PaymentStatusChange
from .answers import payment_apply_gateway_result, payment_flag_locked
from .authorize import payment_request_for
from .calls import gateway_call
from .capture import operation_call, operation_request
from .core import note_locked, payment_lock
from .operations import operation_in_flight, operation_look_later

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source


class ReplayWindowPassed(Exception):
    """Re-sending the payment is no longer safe: the gateway has forgotten its idempotency key."""


def _policy() -> dict:
    return settings.PGI_RECOVERY


def backoff_seconds(attempts: int) -> int:
    """Seconds before the next look after `attempts` looks that did not settle the payment."""
    policy = _policy()
    return min(policy["base_seconds"] * 2 ** max(attempts - 1, 0), policy["max_backoff_seconds"])


def recovery_due() -> QuerySet[Payment]:
    return Payment.objects.recovery_due()


def payments_recover(*, limit: int | None = None) -> dict[str, int]:
    """One recovery run over the payments that are due. Returns counts by what happened."""
    limit = limit or _policy()["batch_size"]
    lease = timedelta(seconds=_policy()["lease_seconds"])
    with transaction.atomic():
        due = (
            GatewayOperation.objects.recovery_due()
            .exclude(kind=OperationKind.REFUND)
            .filter(payment__needs_attention=False)
            .order_by("next_look_at")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", "payment_id")[:limit]
        )
        picked = list(due)
        # The lease: another run skips these until it passes, even after this transaction ends.
        GatewayOperation.objects.filter(pk__in=[pk for pk, _ in picked]).update(lease_expires_at=timezone.now() + lease)
        ids = [payment_id for _, payment_id in picked]
    counts = {"settled": 0, "waiting": 0, "flagged": 0}
    for payment_id in ids:
        try:
            outcome = payment_recover(payment_id=payment_id)
        except Exception:  # deliberately broad: one payment's trouble must not stop the others; retried later
            logger.exception("recovery of %s failed", payment_id)
            outcome = _schedule_next(payment_id, "recovery raised an unexpected error")
        counts[outcome] += 1
    return counts


def payment_recover(*, payment_id: str) -> str:
    """Look at one payment once. Returns "settled", "waiting" or "flagged"."""
    payment = Payment.objects.select_related("merchant").get(pk=payment_id)
    in_flight = operation_in_flight(payment)
    if in_flight is None:
        return "settled"  # settled by a webhook since it was picked
    try:
        connector = get_connector(payment.gateway)
    except UnknownGateway:
        return _flag(payment_id, f"gateway {payment.gateway!r} is no longer configured")
    # Asked only now that a call follows: in a half-open circuit this may be the one probe.
    if not breaker_for(connector.code).allow():
        # Not a look at the payment: an outage does not use up its attempts.
        return _schedule_next(payment_id, f"{connector.code} kept out by its circuit breaker", count=False)

    try:
        if in_flight.kind == OperationKind.AUTHORIZE:
            payment = _recover_processing(payment, connector)
        else:
            payment = _resend_pending(payment, in_flight, connector)
    except ReplayWindowPassed as exc:
        return _flag(payment_id, str(exc))
    except GatewayError as exc:
        return _schedule_next(payment_id, f"{connector.code}: {type(exc).__name__}: {exc}")

    if payment.needs_attention:
        return "flagged"  # the answer contradicted PGI's record: staff decide, no more looks
    if operation_in_flight(payment) is None:
        return "settled"
    return _schedule_next(payment_id, f"{connector.code} has no final answer yet")


def _recover_processing(payment: Payment, connector) -> Payment:
    result = gateway_call(
        payment_id=payment.id,
        connector=connector,
        operation=Operation.STATUS,
        call=lambda: connector.status(payment_id=payment.id, gateway_reference=payment.gateway_reference),
    )
    if result is None:
        # Unknown there, or no lookup: send it again; the idempotency key makes this safe, as long
        # as the gateway still remembers the key.
        window = connector.replay_window
        if window is not None and payment.created_at + window < timezone.now():
            raise ReplayWindowPassed(
                f"{connector.code} has no record of it and remembers idempotency keys for {window} only: "
                "sending it again now could charge as a new payment"
            )
        request = payment_request_for(payment)
        result = gateway_call(
            payment_id=payment.id,
            connector=connector,
            operation=Operation.AUTHORIZE,
            call=lambda: connector.authorize(request),
        )
    return payment_apply_gateway_result(
        payment_id=payment.id,
        operation=Operation.AUTHORIZE,
        result=result,
        source=Source.SYSTEM,
        reason=f"recovered: {connector.code} reports {result.status.value}",
    )


def _resend_pending(payment: Payment, in_flight: GatewayOperation, connector) -> Payment:
    """Send the capture or void in flight again, with its own idempotency key: a gateway that took
    it answers with its first outcome and never does it twice.

    A refusal of the re-send is not taken at its word: a gateway may refuse the second copy of an
    operation it performed the first time (a bare 400 for a capture already done). Before the
    payment moves, the gateway's status of the payment is read and followed; when that tells
    nothing, the operation stays in flight for the next look."""
    operation = Operation(in_flight.kind)
    request = operation_request(payment, in_flight)
    result = gateway_call(
        payment_id=payment.id,
        connector=connector,
        operation=operation,
        call=operation_call(connector, request),
        key=request.key,
    )
    if result.status is GatewayStatus.DECLINED:
        state = gateway_call(
            payment_id=payment.id,
            connector=connector,
            operation=Operation.STATUS,
            call=lambda: connector.status(payment_id=payment.id, gateway_reference=payment.gateway_reference),
        )
        if state is None or state.status is GatewayStatus.PENDING:
            logger.info("recovery of %s: %s refused, status unknown; looking again later", payment.id, operation.value)
            return payment
        if state.status in (GatewayStatus.SUCCEEDED, GatewayStatus.CANCELLED):
            result = state  # the gateway did capture or release it, whatever the re-send was told
        # AUTHORIZED (or DECLINED): the gateway still holds the authorization, the refusal stands.
    return payment_apply_gateway_result(
        payment_id=payment.id,
        operation=operation,
        result=result,
        source=Source.SYSTEM,
        reason=f"recovered: {operation.value} re-sent, {connector.code} reports {result.status.value}",
    )


def _schedule_next(payment_id: str, why: str, count: bool = True) -> str:
    with transaction.atomic():
        payment = payment_lock(payment_id)
        in_flight = operation_in_flight(payment)
        if in_flight is None:
            return "settled"
        if payment.needs_attention:
            return "flagged"  # flagged for a contradiction since it was picked: staff decide
        attempts = in_flight.attempts + (1 if count else 0)
        if attempts >= _policy()["max_attempts"]:
            return _flag(payment_id, f"no final answer after {attempts} looks; last: {why}", attempts=attempts)
        delay = backoff_seconds(max(attempts, 1))
        operation_look_later(in_flight, look_at=timezone.now() + timedelta(seconds=delay), attempts=attempts)
    logger.info("recovery of %s: %s; next look in %ss", payment_id, why, delay)
    return "waiting"


@transaction.atomic
def _flag(payment_id: str, why: str, attempts: int | None = None) -> str:
    """Flag for staff as NO_FINAL_ANSWER; a payment already flagged (a contradiction) keeps its flag."""
    payment = payment_lock(payment_id)
    if payment.needs_attention:
        return "flagged"
    in_flight = operation_in_flight(payment)
    if in_flight is not None and attempts is not None:
        operation_look_later(in_flight, look_at=None, attempts=attempts)
    payment_flag_locked(payment, source=Source.SYSTEM, code=AttentionCode.NO_FINAL_ANSWER, why=why)
    return "flagged"


def payment_recovery_restart(*, payment_id: str, staff_user: str, actor: Actor | None = None) -> Payment | None:
    """Staff: clear the flag, whatever its kind, and look again on the next run (if the outcome
    is still unknown). The history line says who cleared which flag; `actor`, the audit trail. None
    if it is not flagged."""
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if not payment.needs_attention:
            return None
        in_flight = operation_in_flight(payment)
        if in_flight is not None:
            operation_look_later(in_flight, look_at=timezone.now(), attempts=0)
        cleared = f"{payment.attention_code or 'flag'}: {payment.attention_reason}"
        flag = {"needs_attention": True, "attention_code": payment.attention_code, "attention_reason": payment.attention_reason}
        audit_record(actor=actor, action="payment.recovery_restart", obj=payment, before=flag,
                     after={"needs_attention": False, "attention_code": "", "attention_reason": ""})  # fmt: skip
        return note_locked(
            payment,
            source=Source.STAFF,
            reason=f"recovery restarted by {staff_user}; flag cleared (was {cleared})",
            needs_attention=False,
            attention_reason="",
            attention_code="",
        )
