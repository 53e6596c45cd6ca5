"""Refund writes: accept a refund, send it to the payment's gateway, apply what the gateway says.

A refund is accepted under the payment's row lock, so the amount still refundable (captured, minus
what is refunded or in flight) is decided once: concurrent requests cannot both take the last of
it. It is sent outside any transaction, by the task queued after the commit or by the batch job
(refunds_process), each first taking the refund's operation with a lease, so one refund is never
sent by two workers at once; every re-send carries the refund id as the idempotency key, so a
gateway never refunds twice. What the gateway says (its answer, a webhook) is applied under the
payment's row lock again: once, whichever comes first.
"""

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from gateways.base import GatewayError, GatewayTimeout, GatewayUnavailable, Operation, RefundRequest, RefundResult, RefundStatus as GatewayRefundStatus
from gateways.breaker import breaker_for
from gateways.registry import UnknownGateway, get_connector
from payments.models import (
    GatewayAttempt,
    GatewayOperation,
    OperationKind,
    OperationStatus,
    Payment,
    PaymentStatus,
    PaymentStatusChange,
)
from payments.services.calls import gateway_call
from payments.services.core import payment_lock, transition_locked
from payments.services.operations import operation_finish, operation_look_later, operation_start
from payments.services.recovery import backoff_seconds
from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import BusinessRuleViolation, ErrorDetail, ValidationFailed
from pgi.merchants.principals import Principal
from pgi.money import currency_exponent, fits_currency, format_money, quantize
from pgi.text import a_or_an, clip

from .models import Refund, RefundFile, RefundSource, RefundStatus, RefundStatusChange, new_refund_id
from .signals import refund_status_changed

logger = logging.getLogger(__name__)

REFUNDABLE = frozenset({PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED})
# Outcomes of a call that prove the gateway never received it.
NOT_RECEIVED = (GatewayAttempt.Outcome.UNAVAILABLE, GatewayAttempt.Outcome.CIRCUIT_OPEN)


def _policy() -> dict:
    from django.conf import settings

    return settings.PGI_RECOVERY


def refund_available(payment: Payment) -> Decimal:
    """What can still be refunded: the captured amount minus what is refunded, in flight, or held
    by a flag (a Failed or Cancelled refund the gateway says it made: until staff settle it, its
    money may be gone). Decide on it only under the payment's row lock."""
    captured = payment.captured_amount if payment.captured_amount is not None else payment.amount
    held = payment.refunds.filter(
        Q(status=RefundStatus.PENDING) | Q(needs_attention=True) & ~Q(status=RefundStatus.COMPLETED)
    ).aggregate(total=Sum("amount"))["total"]
    return captured - payment.refunded_amount - (held or Decimal(0))


def refund_check(*, payment: Payment, amount: Decimal | None) -> Decimal:
    """The amount to refund (None: all that remains), or raise why not: ValidationFailed (more
    decimals than the currency has), BusinessRuleViolation PAYMENT_NOT_REFUNDABLE (not captured)
    or REFUND_EXCEEDS_AVAILABLE. `payment` must be locked for the answer to hold."""
    if payment.status not in REFUNDABLE:
        raise BusinessRuleViolation(
            f"{a_or_an(payment.status, start=True)} payment cannot be refunded; only a captured one "
            "(Completed or PartiallyRefunded) can.",
            code="PAYMENT_NOT_REFUNDABLE",
        )
    available = refund_available(payment)
    if amount is not None and not fits_currency(amount, payment.currency):
        raise ValidationFailed(
            "The amount has more decimals than the currency allows.",
            details=[ErrorDetail("amount", f"{payment.currency} allows at most {currency_exponent(payment.currency)} decimal places.")],
        )
    if amount is None:
        amount = available
    if available <= 0 or amount > available:
        raise BusinessRuleViolation(
            "Nothing remains to refund on this payment." if available <= 0 else "The refund is larger than what remains refundable.",
            code="REFUND_EXCEEDS_AVAILABLE",
            details=[ErrorDetail("amount", f"At most {quantize(max(available, Decimal(0)), payment.currency)} {payment.currency}.")],
        )
    return quantize(amount, payment.currency)


def refund_create(
    *,
    payment_id: str,
    amount: Decimal | None,
    reason: str = "",
    metadata: dict | None = None,
    principal: Principal | None = None,
    source: str = RefundSource.API,
    link=None,
) -> Refund:
    """Accept a refund of a captured payment: Pending, sent right after the commit.

    Raises what refund_check raises. `link(refund)` runs inside the commit (an Idempotency-Key's
    claim commits with the refund or not at all)."""
    with transaction.atomic():
        payment = payment_lock(payment_id)
        refund = refund_add_locked(
            payment=payment, amount=amount, reason=reason, metadata=metadata, principal=principal, source=source
        )
        if link is not None:
            link(refund)
        transaction.on_commit(lambda: _queue_send(refund.id))
    return refund


def _queue_send(refund_id: str) -> None:
    from .tasks import refund_send  # the task module imports these services

    try:
        refund_send.delay(refund_id)
    except Exception:  # deliberately broad: a broker down must not fail an accepted refund; the batch job sends it
        logger.warning("refund %s not queued; the batch job will send it", refund_id, exc_info=True)


def refund_add_locked(
    *,
    payment: Payment,
    amount: Decimal | None,
    reason: str = "",
    metadata: dict | None = None,
    principal: Principal | None = None,
    source: str = RefundSource.API,
    refund_file: RefundFile | None = None,
) -> Refund:
    """refund_create's checks and rows on a payment the caller holds under payment_lock, without
    queuing the send (a bulk file's refunds are sent by the batch job)."""
    amount = refund_check(payment=payment, amount=amount)
    refund_id = new_refund_id()
    now = timezone.now()
    operation = operation_start(payment=payment, kind=OperationKind.REFUND, amount=amount, key=refund_id, first_look_at=now)
    refund = Refund.objects.create(
        id=refund_id,
        payment=payment,
        merchant_id=payment.merchant_id,
        api_key=principal.api_key if principal is not None else None,
        operation=operation,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        metadata=metadata or {},
        source=source,
        refund_file=refund_file,
        status=RefundStatus.PENDING,
        status_changed_at=now,
        gateway=payment.gateway,
    )
    RefundStatusChange.objects.create(
        refund=refund, from_status="", to_status=RefundStatus.PENDING, source=source, reason="received"
    )
    refund_status_changed.send(sender=Refund, refund=refund, from_status="", source=source)
    return refund


def _refund_move(refund: Refund, *, to_status: str, source: str, reason: str, **changes) -> Refund:
    """Change a refund's status with its history line and signal; the caller holds the payment's lock."""
    from_status = refund.status
    for name, value in changes.items():
        setattr(refund, name, value)
    refund.status = to_status
    refund.status_changed_at = timezone.now()
    refund.save(update_fields=["status", "status_changed_at", "updated_at", *changes])
    RefundStatusChange.objects.create(
        refund=refund,
        from_status=from_status,
        to_status=to_status,
        source=source,
        reason=clip(reason, 255),
        failure_code=changes.get("failure_code", ""),
    )
    refund_status_changed.send(sender=Refund, refund=refund, from_status=from_status, source=source)
    return refund


def _locked(refund_id: str) -> tuple[Payment, Refund]:
    """The refund's payment under its row lock, then the refund: always in this order."""
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).get()
    payment = payment_lock(payment_id)
    refund = Refund.objects.select_related("operation").select_for_update(of=("self",)).get(pk=refund_id)
    return payment, refund


def refund_lock(refund_id: str) -> Refund:
    """The refund under its payment's row lock, for a caller inside a transaction that decides on
    what the refund is now (its status read before the lock may be stale by then)."""
    return _locked(refund_id)[1]


def _flag_locked(refund: Refund, why: str, source: str, attempts: int | None = None) -> Refund:
    logger.warning("refund %s flagged for staff: %s", refund.id, why)
    operation_look_later(refund.operation, look_at=None, attempts=attempts)
    refund.needs_attention = True
    refund.attention_reason = clip(why, 255)
    refund.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
    RefundStatusChange.objects.create(
        refund=refund, from_status=refund.status, to_status=refund.status, source=source, reason=clip(f"flagged for staff: {why}", 255)
    )
    return refund


@transaction.atomic
def refund_apply_result(*, refund_id: str, result: RefundResult, source: str, reason: str = "") -> Refund:
    """Apply what the gateway said of a refund: its answer, a webhook, a re-send's answer.

    Only a Pending refund moves; a repeated or late answer changes nothing. An answer of another
    amount or currency than the refund's, or one that says otherwise of a refund already final,
    moves nothing and flags the refund for staff."""
    payment, refund = _locked(refund_id)
    if result.reference and not refund.gateway_reference:
        refund.gateway_reference = clip(result.reference, 128)
        refund.save(update_fields=["gateway_reference", "updated_at"])
    status = result.status
    moved_money = status is GatewayRefundStatus.SUCCEEDED
    if moved_money and result.currency and result.currency.upper() != refund.currency:
        return _flag_locked(refund, f"refund answer in {clip(result.currency, 12)} for a {refund.currency} refund", source)
    if moved_money and result.amount is not None and result.amount != refund.amount:
        return _flag_locked(
            refund, f"refund answer of {clip(result.amount, 24)} for a refund of {format_money(refund.amount, refund.currency)}", source
        )
    if refund.status != RefundStatus.PENDING:
        contradicts = (refund.status == RefundStatus.COMPLETED) != moved_money and status is not GatewayRefundStatus.PENDING
        if contradicts and not refund.needs_attention:
            return _flag_locked(refund, f"the gateway reports {status.value} for a {refund.status} refund", source)
        return refund
    why = reason or f"{refund.gateway} reports {status.value}"
    if status is GatewayRefundStatus.SUCCEEDED:
        operation_finish(refund.operation, OperationStatus.SUCCEEDED)
        refund = _refund_move(refund, to_status=RefundStatus.COMPLETED, source=source, reason=why, needs_attention=False, attention_reason="")
        _payment_refunded(payment, refund, source)
        return refund
    if status is GatewayRefundStatus.FAILED:
        operation_finish(refund.operation, OperationStatus.FAILED)
        return _refund_move(
            refund,
            to_status=RefundStatus.FAILED,
            source=source,
            reason=why,
            failure_code=clip(result.error_code or "REFUND_FAILED", 64),
            failure_message=clip(result.error_message or "The gateway refused the refund.", 255),
            needs_attention=False,
            attention_reason="",
        )
    # Pending at the gateway: its webhook settles it; until then the batch job asks again later,
    # as many times as recovery asks of a payment, then staff must look (only the gateway knows).
    if refund.needs_attention:
        return refund  # staff look at it: no more looks, whatever the gateway says is still going on
    attempts = refund.operation.attempts + 1
    if attempts >= _policy()["max_attempts"]:
        return _flag_locked(refund, f"{refund.gateway} still reports pending after {attempts} looks", source, attempts=attempts)
    operation_look_later(refund.operation, look_at=timezone.now() + timedelta(seconds=backoff_seconds(attempts)), attempts=attempts)
    return refund


def _payment_refunded(payment: Payment, refund: Refund, source: str) -> None:
    captured = payment.captured_amount if payment.captured_amount is not None else payment.amount
    refunded = payment.refunded_amount + refund.amount
    transition_locked(
        payment,
        to_status=PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED,
        source=source if source in PaymentStatusChange.Source.values else PaymentStatusChange.Source.SYSTEM,
        reason=f"refund {refund.id} of {format_money(refund.amount, refund.currency)} completed",
        refunded_amount=refunded,
    )


def refund_claim(refund_id: str) -> bool:
    """Take the refund's operation for one send: a conditional update that only one worker wins,
    held for as long as a call can take. False when it is final or another worker holds it."""
    refund = Refund.objects.select_related("operation").get(pk=refund_id)
    now = timezone.now()
    hold = _hold_seconds(refund.gateway)
    return bool(
        GatewayOperation.objects.filter(pk=refund.operation_id, status=OperationStatus.PENDING, next_look_at__isnull=False)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .update(lease_expires_at=now + timedelta(seconds=hold))
    )


def _hold_seconds(gateway: str) -> float:
    try:
        return get_connector(gateway).max_call_seconds + 30
    except UnknownGateway:
        return 60


def refund_send(*, refund_id: str) -> str:
    """Send one refund whose operation the caller has claimed (refund_claim, or the batch's lease),
    and apply the answer. Returns "completed", "failed", "waiting" or "flagged"."""
    refund = Refund.objects.select_related("payment__merchant", "operation").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return _outcome(refund)
    try:
        connector = get_connector(refund.gateway)
    except UnknownGateway:
        return _outcome(_give_up(refund_id, f"gateway {refund.gateway!r} is no longer configured", received=_maybe_received(refund)))
    window = connector.replay_window
    if window is not None and refund.created_at + window < timezone.now() and _maybe_received(refund):
        return _outcome(_give_up(refund_id, f"{connector.code} remembers idempotency keys for {window} only: "
                                 "sending it again now could refund twice", received=True))
    if not breaker_for(connector.code).allow():
        _retry_later(refund_id, f"{connector.code} kept out by its circuit breaker", count=False)
        return "waiting"
    payment = refund.payment
    request = RefundRequest(
        refund_id=refund.id,
        payment_id=payment.id,
        gateway_reference=payment.gateway_reference,
        amount=refund.amount,
        currency=refund.currency,
        merchant_code=payment.merchant.code,
        reason=refund.reason,
    )
    try:
        result = gateway_call(
            payment_id=payment.id, connector=connector, operation=Operation.REFUND, call=lambda: connector.refund(request), key=refund.id
        )
    except GatewayUnavailable as exc:
        return _retry_later(refund_id, f"{connector.code} unavailable: {exc}")
    except GatewayTimeout as exc:
        return _retry_later(refund_id, f"{connector.code} timed out: {exc}; the refund is sent again with the same key")
    except GatewayError as exc:
        return _retry_later(refund_id, f"{connector.code}: {type(exc).__name__}: {exc}")
    refund = refund_apply_result(refund_id=refund_id, result=result, source=RefundSource.GATEWAY)
    return _outcome(refund)


def _outcome(refund: Refund) -> str:
    if refund.needs_attention:
        return "flagged"
    return {RefundStatus.COMPLETED: "completed", RefundStatus.FAILED: "failed", RefundStatus.CANCELLED: "failed"}.get(refund.status, "waiting")


def _maybe_received(refund: Refund) -> bool:
    """Whether any call may have reached the gateway (anything but an unavailable or a skipped one)."""
    return GatewayAttempt.objects.filter(payment_id=refund.payment_id, idempotency_key=refund.id).exclude(outcome__in=NOT_RECEIVED).exists()


def _retry_later(refund_id: str, why: str, count: bool = True) -> str:
    """The send did not settle the refund: try again after a backoff; after the last try, a refund
    the gateway never received fails, and one it may have received goes to staff."""
    with transaction.atomic():
        _payment, refund = _locked(refund_id)
        if refund.status != RefundStatus.PENDING or refund.needs_attention:
            return _outcome(refund)
        attempts = refund.operation.attempts + (1 if count else 0)
        if attempts >= _policy()["max_attempts"]:
            refund = _give_up_locked(
                refund, f"no answer after {attempts} tries; last: {why}", received=_maybe_received(refund), attempts=attempts
            )
            return _outcome(refund)
        delay = backoff_seconds(max(attempts, 1))
        operation_look_later(refund.operation, look_at=timezone.now() + timedelta(seconds=delay), attempts=attempts)
    logger.info("refund %s: %s; next try in %ss", refund_id, why, delay)
    return "waiting"


@transaction.atomic
def _give_up(refund_id: str, why: str, received: bool) -> Refund:
    _payment, refund = _locked(refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
    return _give_up_locked(refund, why, received)


def _give_up_locked(refund: Refund, why: str, received: bool, attempts: int | None = None) -> Refund:
    """A refund that can no longer be sent: Failed when the gateway never received it (nothing
    happened there), flagged for staff when it may have (only the gateway knows)."""
    if received:
        return _flag_locked(refund, why, RefundSource.SYSTEM, attempts=attempts)
    operation_finish(refund.operation, OperationStatus.NOT_SENT)
    return _refund_move(
        refund,
        to_status=RefundStatus.FAILED,
        source=RefundSource.SYSTEM,
        reason=why,
        failure_code="GATEWAY_UNAVAILABLE",
        failure_message="The refund could not be sent to the gateway; nothing was refunded.",
    )


def _due_operations(now):
    return GatewayOperation.objects.recovery_due(now).filter(kind=OperationKind.REFUND).order_by("next_look_at")


def refunds_due_list(*, limit: int) -> QuerySet[Refund]:
    """The refunds the next run would take (refunds_due), in its order, without claiming them: no
    lock, no lease (process_refunds --dry-run). A read, kept beside the claim it previews so that
    both ask the same question."""
    due = _due_operations(timezone.now()).values("id")
    return Refund.objects.filter(operation__in=due).select_related("operation").order_by("operation__next_look_at", "id")[:limit]


def refunds_due(limit: int) -> list[str]:
    """Claim up to `limit` due refunds for this run (SKIP LOCKED, then a lease) and return their ids."""
    return [refund_id for refund_id, _gateway, _operation_id in _refunds_claim(limit)[0]]


def _refunds_claim(limit: int) -> tuple[list[tuple[str, str, int]], datetime]:
    """refunds_due's claim: (id, gateway, operation id) of each, and the lease it set, the run's
    token to tell later that it still holds them."""
    now = timezone.now()
    held_until = now + timedelta(seconds=_policy()["lease_seconds"])
    with transaction.atomic():
        picked = list(
            _due_operations(now)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        GatewayOperation.objects.filter(pk__in=picked).update(lease_expires_at=held_until)
    ids = list(Refund.objects.filter(operation_id__in=picked).order_by("operation__next_look_at").values_list("id", "gateway", "operation_id"))
    return ids, held_until


def _lease_keep(operation_id: int, gateway: str, *, held_until: datetime) -> bool:
    """Hold one refund of the run for its call, if the run still holds it: its lease is still the
    one the run set. A run slower than its lease (a gateway timing out on every call) may have lost
    it to another run meanwhile, which sends it; sending it too would be a second call."""
    # By the operation's own id: a condition through a join would become a subquery that
    # PostgreSQL does not check again against a row another run changed meanwhile.
    hold = timedelta(seconds=_hold_seconds(gateway))
    return bool(
        GatewayOperation.objects.filter(pk=operation_id, status=OperationStatus.PENDING, lease_expires_at=held_until)
        .update(lease_expires_at=timezone.now() + hold)
    )


def refunds_process(*, limit: int | None = None, progress=None) -> dict[str, int]:
    """One batch run: send the due refunds (new ones the task missed, bulk-file refunds, retries).
    Returns counts by outcome; a refund the run lost to another one (or that a webhook settled
    since it was picked) is not counted. `progress(refund_id, outcome)` is told of each sent."""
    counts = {"completed": 0, "failed": 0, "waiting": 0, "flagged": 0}
    ids, held_until = _refunds_claim(limit or _policy()["batch_size"])
    for refund_id, gateway, operation_id in ids:
        if not _lease_keep(operation_id, gateway, held_until=held_until):
            continue
        try:
            outcome = refund_send(refund_id=refund_id)
        except Exception:  # deliberately broad: one refund's trouble must not stop the others; retried later
            logger.exception("sending refund %s failed", refund_id)
            outcome = _retry_later(refund_id, "an unexpected error")
        counts[outcome] += 1
        if progress is not None:
            progress(refund_id, outcome)
    return counts


def refunds_process_run(*, seconds: float | None = None, batch_size: int | None = None) -> dict[str, int]:
    """The beat job: batches of refunds_process until nothing is due or `seconds` have passed
    (settings.PGI_REFUNDS), so that one run sends a large bulk file's refunds by the thousand
    while the next run, a minute later, never finds this one still going."""
    from django.conf import settings

    seconds = settings.PGI_REFUNDS["run_seconds"] if seconds is None else seconds
    batch_size = batch_size or settings.PGI_REFUNDS["batch_size"]
    deadline = time.monotonic() + seconds
    totals = {"completed": 0, "failed": 0, "waiting": 0, "flagged": 0}
    while True:
        counts = refunds_process(limit=batch_size)
        for outcome, count in counts.items():
            totals[outcome] += count
        if not any(counts.values()) or time.monotonic() >= deadline:
            return totals


def refund_cancel(*, refund_id: str, staff_user: str, reason: str, actor: Actor | None = None) -> Refund:
    """Staff: cancel a Pending refund that never reached the gateway. Raises BusinessRuleViolation
    when it is final, being sent, or may have reached the gateway (then only the gateway can say)."""
    with transaction.atomic():
        _payment, refund = _locked(refund_id)
        if refund.status != RefundStatus.PENDING:
            raise BusinessRuleViolation(f"A {refund.status} refund cannot be cancelled.", code="REFUND_NOT_CANCELLABLE")
        lease = refund.operation.lease_expires_at
        if (lease is not None and lease > timezone.now()) or _maybe_received(refund):
            raise BusinessRuleViolation(
                "The refund may have reached the gateway; it cannot be cancelled.", code="REFUND_NOT_CANCELLABLE"
            )
        operation_finish(refund.operation, OperationStatus.NOT_SENT)
        audit_record(actor=actor, action="refund.cancel", obj=refund, before={"status": refund.status},
                     after={"status": RefundStatus.CANCELLED, "failure_code": "CANCELLED_BY_STAFF"}, note=reason)  # fmt: skip
        return _refund_move(
            refund,
            to_status=RefundStatus.CANCELLED,
            source=RefundSource.STAFF,
            reason=f"cancelled by {staff_user}: {reason}",
            failure_code="CANCELLED_BY_STAFF",
            failure_message=clip(reason or "Cancelled by staff.", 255),
        )


def refund_retry(*, refund_id: str, staff_user: str, actor: Actor | None = None) -> Refund:
    """Staff: a Failed refund again, as a new refund of the same amount (the failed one stays as it
    was, with its own key: the gateway would answer a re-send with the same failure).

    Once per failed refund, decided under the payment's lock: a second click (or two staff at once)
    raises BusinessRuleViolation REFUND_ALREADY_RETRIED instead of refunding twice; when the new
    refund fails as well, that one is retried."""
    failed = Refund.objects.get(pk=refund_id)
    if failed.status != RefundStatus.FAILED:
        raise BusinessRuleViolation(f"Only a Failed refund can be retried; this one is {failed.status}.", code="REFUND_NOT_RETRYABLE")
    if failed.needs_attention:
        # The gateway said it made this refund after all: a retry could refund twice.
        raise BusinessRuleViolation(
            f"Refund {failed.id} is flagged: the gateway contradicts its failure. Settle it against the gateway first.",
            code="REFUND_FLAGGED",
        )
    with transaction.atomic():
        payment = payment_lock(failed.payment_id)
        earlier = payment.refunds.filter(metadata__retryOf=failed.id).values_list("pk", flat=True).first()
        if earlier is not None:
            raise BusinessRuleViolation(f"Refund {failed.id} was already retried as {earlier}.", code="REFUND_ALREADY_RETRIED")
        refund = refund_add_locked(
            payment=payment,
            amount=failed.amount,
            reason=failed.reason,
            metadata={**failed.metadata, "retryOf": failed.id},
            source=RefundSource.STAFF,
        )
        audit_record(actor=actor, action="refund.retry", obj=failed, before={"retriedAs": None},
                     after={"retriedAs": refund.id, "amount": refund.amount, "currency": refund.currency})  # fmt: skip
        transaction.on_commit(lambda: _queue_send(refund.id))
    logger.info("refund %s retried as %s by %s", failed.id, refund.id, staff_user)
    return refund


def refund_restart(*, refund_id: str, staff_user: str, actor: Actor | None = None) -> Refund | None:
    """Staff: clear a Pending refund's flag and send it again on the next run. None if it is not a
    flagged Pending refund: a final refund that the gateway contradicts is not asked again (no
    gateway offers a refund lookup); its flag stays, and its amount stays held, until it is settled
    against the gateway's report."""
    with transaction.atomic():
        _payment, refund = _locked(refund_id)
        if not refund.needs_attention or refund.status != RefundStatus.PENDING:
            return None
        cleared = refund.attention_reason
        audit_record(actor=actor, action="refund.restart", obj=refund,
                     before={"needs_attention": True, "attention_reason": cleared},
                     after={"needs_attention": False, "attention_reason": ""})  # fmt: skip
        if refund.status == RefundStatus.PENDING:
            operation_look_later(refund.operation, look_at=timezone.now(), attempts=0)
        refund.needs_attention, refund.attention_reason = False, ""
        refund.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        RefundStatusChange.objects.create(
            refund=refund, from_status=refund.status, to_status=refund.status, source=RefundSource.STAFF,
            reason=clip(f"restarted by {staff_user}; flag cleared (was {cleared})", 255),
        )
        return refund
