"""Refunds through the services against the simulator: accepted under the payment's lock, sent,
and applied once."""

from decimal import Decimal

import pytest

from gateways.base import RefundResult, RefundStatus as GatewayRefundStatus
from payments.models import GatewayAttempt, PaymentStatus
from payments.services import payment_process, payment_validate
from pgi.errors import BusinessRuleViolation
from refunds.models import Refund, RefundStatus
from refunds.services import refund_apply_result, refund_claim, refund_create, refund_send, refunds_process

pytestmark = pytest.mark.django_db


def completed_payment(principal, amount="100.00"):
    draft = payment_validate(
        principal=principal, amount=Decimal(amount), currency="USD", from_account="account123", to_merchant=None
    )
    payment = payment_process(draft=draft, principal=principal)
    assert payment.status == PaymentStatus.COMPLETED
    return payment


def test_a_partial_then_the_rest_refunds_the_payment_in_two_steps(principal):
    payment = completed_payment(principal)

    first = refund_create(payment_id=payment.id, amount=Decimal("30.00"), principal=principal)
    assert first.status == RefundStatus.PENDING
    assert refund_claim(first.id)
    assert refund_send(refund_id=first.id) == "completed"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("30.00"))

    rest = refund_create(payment_id=payment.id, amount=None, principal=principal)
    assert rest.amount == Decimal("70.00")
    assert refunds_process()["completed"] == 1
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.REFUNDED, Decimal("100.00"))
    assert list(GatewayAttempt.objects.filter(operation="refund").values_list("idempotency_key", "outcome")) == [
        (first.id, "succeeded"),
        (rest.id, "succeeded"),
    ]


def test_more_than_remains_and_a_payment_not_captured_are_refused(principal):
    payment = completed_payment(principal)
    refund_create(payment_id=payment.id, amount=Decimal("60.00"), principal=principal)

    with pytest.raises(BusinessRuleViolation) as exceeded:
        refund_create(payment_id=payment.id, amount=Decimal("40.01"), principal=principal)
    assert exceeded.value.code == "REFUND_EXCEEDS_AVAILABLE"

    draft = payment_validate(
        principal=principal, amount=Decimal("10.00"), currency="USD", from_account="account123", to_merchant=None,
        capture=False,
    )
    authorized = payment_process(draft=draft, principal=principal)
    with pytest.raises(BusinessRuleViolation) as not_refundable:
        refund_create(payment_id=authorized.id, amount=None, principal=principal)
    assert not_refundable.value.code == "PAYMENT_NOT_REFUNDABLE"


def test_an_answer_applied_twice_counts_the_money_once(principal):
    payment = completed_payment(principal)
    refund = refund_create(payment_id=payment.id, amount=Decimal("25.00"), principal=principal)
    answer = RefundResult(GatewayRefundStatus.SUCCEEDED, reference="sim_re_1", amount=Decimal("25.00"), currency="USD")

    refund_apply_result(refund_id=refund.id, result=answer, source="webhook")
    refund_apply_result(refund_id=refund.id, result=answer, source="gateway")

    payment.refresh_from_db()
    assert (payment.refunded_amount, Refund.objects.get(pk=refund.id).status) == (Decimal("25.00"), RefundStatus.COMPLETED)
    assert not refund_claim(refund.id)  # final: nothing left to send
