"""Payment and refund outcomes, counted from the domain signals once their transaction commits.

The signals fire inside the change's transaction; the count waits for its commit (on_commit), so a
change rolled back is never counted. Counting costs no SQL: one Redis HINCRBY after the commit.
"""

from functools import partial

from django.db import transaction
from django.dispatch import receiver

from payments.models import Payment, PaymentStatus
from payments.signals import payment_status_changed
from pgi.observability.shared_counters import counter_add
from refunds.models import Refund, RefundStatus
from refunds.signals import refund_status_changed

PAYMENT_OUTCOMES_COUNTER = "payment_outcomes"
REFUND_OUTCOMES_COUNTER = "refund_outcomes"
# What the gateway (or staff, for Cancelled) made of a payment; Processing says only that it was
# sent, and the refund statuses belong to the refunds' own counter.
PAYMENT_OUTCOMES = frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.COMPLETED, PaymentStatus.FAILED, PaymentStatus.CANCELLED})
REFUND_OUTCOMES = frozenset({RefundStatus.COMPLETED, RefundStatus.FAILED, RefundStatus.CANCELLED})
NO_GATEWAY = "none"  # refused before any gateway was chosen (no route, every breaker open)


@receiver(payment_status_changed, sender=Payment, dispatch_uid="monitoring.payment_outcome")
def payment_outcome_count(sender, *, payment: Payment, from_status: str, **kwargs) -> None:
    if from_status and payment.status in PAYMENT_OUTCOMES:
        labels = (payment.gateway or NO_GATEWAY, str(payment.status))
        transaction.on_commit(partial(counter_add, PAYMENT_OUTCOMES_COUNTER, labels))


@receiver(refund_status_changed, sender=Refund, dispatch_uid="monitoring.refund_outcome")
def refund_outcome_count(sender, *, refund: Refund, from_status: str, **kwargs) -> None:
    if from_status and refund.status in REFUND_OUTCOMES:
        labels = (refund.gateway or NO_GATEWAY, str(refund.status))
        transaction.on_commit(partial(counter_add, REFUND_OUTCOMES_COUNTER, labels))
