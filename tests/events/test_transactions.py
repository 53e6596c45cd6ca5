"""The event commits with its status change or not at all, on real PostgreSQL transactions."""

from decimal import Decimal

import pytest
from django.db import transaction

from payments.models import Payment, PaymentStatus, PaymentStatusChange
from payments.services import payment_create, payment_transition, payment_validate
from pgi.events import receivers
from pgi.events.models import OutboxEvent


def pending(principal) -> Payment:
    draft = payment_validate(
        principal=principal, amount=Decimal("50.00"), currency="USD", from_account="account123", to_merchant=None
    )
    return payment_create(draft=draft, principal=principal)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_leaves_no_event(principal):
    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        payment = pending(principal)
        assert OutboxEvent.objects.filter(key=payment.id).count() == 1  # written inside the transaction
        raise Abandoned

    assert not Payment.objects.filter(pk=payment.id).exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_status_change_and_its_event_commit_together(principal):
    payment = pending(principal)

    payment_transition(payment_id=payment.id, to_status=PaymentStatus.PROCESSING, source="system")

    # Committed (transaction=True): both are seen from a new transaction.
    with transaction.atomic():
        assert Payment.objects.get(pk=payment.id).status == PaymentStatus.PROCESSING
        assert list(OutboxEvent.objects.filter(key=payment.id).values_list("event_type", flat=True)) == [
            "PAYMENT_CREATED",
            "PAYMENT_STATUS_UPDATED",
        ]


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_fails_rolls_the_status_change_back(principal, monkeypatch):
    payment = pending(principal)

    def broken(message, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(receivers, "outbox_rows", broken)
    with pytest.raises(RuntimeError, match="outbox unavailable"):
        payment_transition(payment_id=payment.id, to_status=PaymentStatus.PROCESSING, source="system")

    assert Payment.objects.get(pk=payment.id).status == PaymentStatus.PENDING
    assert list(PaymentStatusChange.objects.filter(payment_id=payment.id).values_list("to_status", flat=True)) == [
        PaymentStatus.PENDING
    ]
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == ["PAYMENT_CREATED"]
