"""Gateway operations: what PGI asked a gateway to do with a payment's money, one row each.

Every function here is called under the payment's row lock (core.payment_lock), beside the payment
change the operation causes, so an operation and its payment never disagree in a committed state.
"""

from datetime import datetime

from django.utils import timezone

from gateways.base import Operation, idempotency_key
from pgi.compiled import CompiledSelect, insert_rows, update_row

from ..models import FOLLOW_UPS, GatewayAttempt, GatewayOperation, OperationKind, OperationStatus, Payment, PaymentStatus

Status = OperationStatus


def operation_key_next(*, payment: Payment, kind: str) -> str:
    """The idempotency key of the payment's next capture or void.

    The first keeps the plain derived key (`<id>-capture`); later ones are numbered by how many
    captures and voids the payment has had (`<id>-void-2`), so that a new try after a refusal is
    not answered with that refusal. A key any gateway has already seen for this payment (an
    operation, or an attempt made before operations were rows) is never reused."""
    sent = payment.operations.filter(kind__in=FOLLOW_UPS).count()
    base = idempotency_key(Operation(kind), payment.id)
    number = sent + 1
    while True:
        key = base if number <= 1 else f"{base}-{number}"
        used = (
            GatewayOperation.objects.filter(idempotency_key=key).exists()
            or GatewayAttempt.objects.filter(payment=payment, idempotency_key=key).exists()
        )
        if not used:
            return key
        number += 1


def operation_start(
    *,
    payment: Payment,
    kind: str,
    amount,
    key: str,
    first_look_at: datetime | None,
    by_expiry: bool = False,
) -> GatewayOperation:
    """Record an operation as sent (pending): recovery first looks at `first_look_at`, when the call
    that sends it has certainly given up."""
    payment.__dict__.pop("_operations_open", None)  # what operations_open_read read is now incomplete
    (operation,) = insert_rows(
        [
            GatewayOperation(
                payment=payment,
                kind=kind,
                amount=amount,
                idempotency_key=key,
                by_expiry=by_expiry,
                next_look_at=first_look_at,
            )
        ]
    )
    return operation


def operation_finish(operation: GatewayOperation, status: str) -> GatewayOperation:
    """End an operation in flight with its outcome; one already ended is left as it is."""
    if operation.status != Status.PENDING:
        return operation
    operation.status = status
    operation.finished_at = timezone.now()
    operation.next_look_at = None
    operation.lease_expires_at = None
    update_row(operation, ["status", "finished_at", "next_look_at", "lease_expires_at", "updated_at"])
    return operation


# What a payment's new status says of each operation that held it.
_SUCCEEDS_WHEN = {
    OperationKind.AUTHORIZE: frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.COMPLETED}),
    OperationKind.CAPTURE: frozenset({PaymentStatus.COMPLETED}),
    OperationKind.VOID: frozenset({PaymentStatus.CANCELLED}),
}


def operations_end(*, payment: Payment, to_status: str, finish: dict[str, str]) -> None:
    """End the operations in flight that held the payment in the status it just left (see
    core.transition_locked). Refunds run beside the payment's status: never ended here."""
    for operation in operations_open(payment):
        default = Status.SUCCEEDED if to_status in _SUCCEEDS_WHEN[operation.kind] else Status.FAILED
        operation_finish(operation, finish.get(operation.kind, default))


# payment.operations.pending() without refunds, oldest first: built and compiled once per process
# (pgi.compiled), as it is read on every answer of a gateway.
_OPEN = CompiledSelect(
    lambda payment_id: GatewayOperation.objects.filter(payment_id=payment_id)
    .pending()
    .exclude(kind=OperationKind.REFUND)
    .order_by("created_at", "id"),
    marks=("pgi-compiled-open-operations-mark",),
)


def operations_open_read(payment: Payment) -> list[GatewayOperation]:
    """Read the payment's open operations (not refunds) once, under its row lock, oldest first:
    operation_in_flight's and operations_end's answer until the lock's transaction ends or an
    operation is started, so that deciding on an answer and applying it reads them once."""
    found = _OPEN.rows(payment.pk, using=GatewayOperation.objects.db)
    for operation in found:
        operation.payment = payment  # as payment.operations would: its payment is this one
    payment.__dict__["_operations_open"] = found
    return found


def operations_open(payment: Payment) -> list[GatewayOperation]:
    """The operations still pending among those operations_open_read read, else read fresh."""
    found = payment.__dict__.get("_operations_open")
    if found is None:
        return list(payment.operations.pending().exclude(kind=OperationKind.REFUND))
    return [operation for operation in found if operation.status == Status.PENDING]


def operation_in_flight(payment: Payment) -> GatewayOperation | None:
    """The operation holding the payment (Payment.open_operation); call it under the payment's row
    lock to decide on it."""
    if "_operations_open" in payment.__dict__:
        return next(iter(operations_open(payment)), None)
    return payment.open_operation()


def operation_look_later(operation: GatewayOperation, *, look_at: datetime | None, attempts: int | None = None) -> None:
    """Reschedule recovery's next look (None: no more looks, staff must), and end any lease."""
    operation.next_look_at = look_at
    operation.lease_expires_at = None
    fields = ["next_look_at", "lease_expires_at", "updated_at"]
    if attempts is not None:
        operation.attempts = attempts
        fields.append("attempts")
    update_row(operation, fields)
