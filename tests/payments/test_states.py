"""The payment state machine, and payment_transition: the one function that changes a status."""

import contextlib

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payments.models import Payment, PaymentStatus, PaymentStatusChange
from payments.services import InvalidTransition, payment_transition
from payments.signals import payment_status_changed
from payments.states import FINAL, TRANSITIONS, can_transition

from ..factories import PaymentFactory

S = PaymentStatus

# DESIGN.md: Pending → Processing → Completed | Failed; Authorized → Completed | Cancelled;
# Completed → PartiallyRefunded → Refunded. Plus what a payments engineer expects: a payment can
# fail before reaching the gateway, be authorized (capture: false), be refunded in full at once,
# and be partially refunded more than once.
ALLOWED = {
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.FAILED),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.AUTHORIZED),
    (S.AUTHORIZED, S.COMPLETED),
    (S.AUTHORIZED, S.CANCELLED),
    (S.COMPLETED, S.PARTIALLY_REFUNDED),
    (S.COMPLETED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
}
EVERY_PAIR = [(a, b) for a in S.values for b in S.values]


def test_the_state_machine_names_every_status():
    assert set(TRANSITIONS) == set(S.values)


@pytest.mark.parametrize(("from_status", "to_status"), EVERY_PAIR)
def test_can_transition_allows_exactly_the_designed_moves(from_status, to_status):
    assert can_transition(from_status, to_status) is ((from_status, to_status) in ALLOWED)


def test_final_statuses_are_failed_cancelled_and_refunded():
    assert FINAL == {S.FAILED, S.CANCELLED, S.REFUNDED}


def test_nothing_returns_to_pending():
    assert not any(can_transition(status, S.PENDING) for status in S.values)


def test_unknown_status_can_go_nowhere():
    assert not can_transition("Exploded", S.COMPLETED)


@pytest.mark.django_db
def test_transition_changes_the_status_and_writes_the_history(django_capture_on_commit_callbacks):
    payment = PaymentFactory(status=S.PROCESSING)
    before = timezone.now()
    received = []

    def receiver(sender, payment, from_status, source, **kwargs):
        received.append((payment.id, from_status, payment.status, source))

    payment_status_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            moved = payment_transition(
                payment_id=payment.id,
                to_status=S.FAILED,
                source="gateway",
                reason="declined",
                failure_code="DECLINED",
                failure_message="no",
            )
    finally:
        payment_status_changed.disconnect(receiver)

    payment.refresh_from_db()
    assert payment.status == moved.status == S.FAILED
    assert (payment.failure_code, payment.failure_message) == ("DECLINED", "no")
    assert payment.status_changed_at >= before
    change = PaymentStatusChange.objects.get(payment=payment)
    assert (change.from_status, change.to_status, change.source, change.reason, change.failure_code) == (
        S.PROCESSING, S.FAILED, "gateway", "declined", "DECLINED",
    )
    assert received == [(payment.id, S.PROCESSING, S.FAILED, "gateway")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("crash", [False, True], ids=["committed", "rolled back"])
def test_status_changed_signal_is_sent_inside_the_transaction_that_changes_the_status(crash):
    payment = PaymentFactory(status=S.PENDING)
    in_transaction = []

    def receiver(sender, payment, **kwargs):
        in_transaction.append(connection.in_atomic_block)
        # Stands for the outbox row a receiver will write: it must share the status change's fate.
        Payment.objects.filter(pk=payment.pk).update(description="written by a receiver")

    payment_status_changed.connect(receiver)
    try:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            payment_transition(payment_id=payment.id, to_status=S.PROCESSING, source="system")
            if crash:
                raise RuntimeError("the process dies before the commit")
    finally:
        payment_status_changed.disconnect(receiver)

    payment.refresh_from_db()
    assert in_transaction == [True]
    if crash:
        assert (payment.status, payment.description) == (S.PENDING, "")
    else:
        assert (payment.status, payment.description) == (S.PROCESSING, "written by a receiver")


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "to_status"), [(a, b) for a, b in EVERY_PAIR if (a, b) not in ALLOWED])
def test_illegal_transition_raises_and_changes_nothing(from_status, to_status):
    payment = PaymentFactory(status=from_status)

    with pytest.raises(InvalidTransition) as raised:
        payment_transition(payment_id=payment.id, to_status=to_status, source="staff")

    assert raised.value.status_code == 409
    assert raised.value.code == "INVALID_STATE_TRANSITION"
    payment.refresh_from_db()
    assert payment.status == from_status
    assert not PaymentStatusChange.objects.filter(payment=payment).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("final", sorted(FINAL | {S.COMPLETED}))
def test_only_from_leaves_a_payment_in_another_status_unchanged(final):
    payment = PaymentFactory(status=final)
    changed_at = payment.status_changed_at

    returned = payment_transition(
        payment_id=payment.id,
        to_status=S.FAILED,
        source="webhook",
        only_from=frozenset({S.PROCESSING}),
        failure_code="DECLINED",
    )

    payment.refresh_from_db()
    assert returned.status == payment.status == final
    assert payment.status_changed_at == changed_at
    assert payment.failure_code == ""
    assert not PaymentStatusChange.objects.filter(payment=payment).exists()


@pytest.mark.django_db
def test_illegal_transition_through_the_api_error_format_is_409():
    from pgi.api.exception_handler import api_exception_handler

    payment = PaymentFactory(status=S.FAILED)
    with pytest.raises(InvalidTransition) as raised:
        payment_transition(payment_id=payment.id, to_status=S.COMPLETED, source="staff")

    response = api_exception_handler(raised.value, {"view": None})

    assert response.status_code == 409
    assert response.data["error"]["code"] == "INVALID_STATE_TRANSITION"
    assert "Failed" in response.data["error"]["message"]
