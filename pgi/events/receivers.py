"""Receivers of the domain signals: each writes the change's outbox rows in the change's transaction.

No broker call here: the relay publishes the rows after they commit. A receiver that raises rolls
the status change back with it, so the event and the change commit together or not at all. One
INSERT per change (two for an outcome, which is also told on payment-notifications). A bulk
refund file's refunds come in one signal and are written in batches.
"""

from django.dispatch import receiver
from django.utils import timezone

from payments.models import Payment
from payments.signals import payment_status_changed
from refunds.models import Refund
from refunds.signals import refund_status_changed, refunds_received_in_bulk
from settlements.models import SettlementBatch
from settlements.signals import settlement_completed

from pgi.compiled import insert_rows

from .models import OutboxEvent
from .payloads import outbox_rows, payment_message, refund_message, settlement_message


@receiver(payment_status_changed, sender=Payment, dispatch_uid="events.payment_status_changed")
def payment_status_changed_write(sender, *, payment: Payment, from_status: str, **kwargs) -> None:
    message = payment_message(payment=payment, from_status=from_status, now=timezone.now())
    insert_rows(outbox_rows(message, merchant_id=payment.merchant_id))


@receiver(refund_status_changed, sender=Refund, dispatch_uid="events.refund_status_changed")
def refund_status_changed_write(sender, *, refund: Refund, from_status: str, **kwargs) -> None:
    message = refund_message(refund=refund, from_status=from_status, now=timezone.now())
    insert_rows(outbox_rows(message, merchant_id=refund.merchant_id))


@receiver(settlement_completed, sender=SettlementBatch, dispatch_uid="events.settlement_completed")
def settlement_completed_write(sender, *, batch: SettlementBatch, **kwargs) -> None:
    OutboxEvent.objects.bulk_create(outbox_rows(settlement_message(batch=batch, now=timezone.now())))


@receiver(refunds_received_in_bulk, sender=Refund, dispatch_uid="events.refunds_received_in_bulk")
def refunds_received_in_bulk_write(sender, *, refunds, **kwargs) -> None:
    """REFUND_CREATED for each refund of a bulk file, in batches of BULK_BATCH rows."""
    now = timezone.now()
    batch: list[OutboxEvent] = []
    for refund in refunds.order_by("pk").iterator(chunk_size=BULK_BATCH):
        message = refund_message(refund=refund, from_status="", now=now)
        batch.extend(outbox_rows(message, merchant_id=refund.merchant_id))
        if len(batch) >= BULK_BATCH:
            OutboxEvent.objects.bulk_create(batch)
            batch = []
    if batch:
        OutboxEvent.objects.bulk_create(batch)


BULK_BATCH = 2000
