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


@pytest.mark.parametrize(
    ("amount", "status", "failure_code"),
    [("10.02", RefundStatus.FAILED, "DECLINED"), ("10.00", RefundStatus.COMPLETED, "")],
)
def test_the_simulators_refund_test_values_decline_or_complete(principal, amount, status, failure_code):
    payment = completed_payment(principal)
    refund = refund_create(payment_id=payment.id, amount=Decimal(amount), principal=principal)

    refunds_process()

    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == (status, failure_code)


def test_a_refund_whose_answer_timed_out_is_sent_again_with_its_key_and_refunded_once(principal):
    from gateways.models import SimulatorRefund
    from tests.factories import make_due

    payment = completed_payment(principal)
    refund = refund_create(payment_id=payment.id, amount=Decimal("10.08"), principal=principal)

    assert refunds_process()["waiting"] == 1
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING
    make_due(payment.id)
    assert refunds_process()["completed"] == 1

    payment.refresh_from_db()
    assert (payment.refunded_amount, SimulatorRefund.objects.filter(refund_id=refund.id).count()) == (Decimal("10.08"), 1)
    assert list(GatewayAttempt.objects.filter(operation="refund").values_list("outcome", flat=True)) == ["timeout", "succeeded"]


def test_a_pending_refund_is_completed_by_the_simulators_signed_webhook(principal, client, django_capture_on_commit_callbacks, monkeypatch):
    from gateways.simulator import tasks

    delivered = []
    monkeypatch.setattr(tasks.simulator_refund_webhook_send, "apply_async", lambda args, countdown: delivered.append(args))
    payment = completed_payment(principal)
    refund = refund_create(payment_id=payment.id, amount=Decimal("10.20"), principal=principal)

    with django_capture_on_commit_callbacks(execute=True):
        assert refunds_process()["waiting"] == 1
    [(reference, code)] = delivered
    # What the task does, with the test client standing in for PGI's webhook URL.
    from gateways.registry import get_connector
    from gateways.simulator.ledger import simulator_refund_complete
    from gateways.simulator.webhooks import SIGNATURE_HEADER

    simulated = simulator_refund_complete(code=code, reference=reference)
    connector = get_connector(code)
    body = connector.webhook_body(simulated.charge, refund=simulated)
    response = client.post(
        f"/v1/gateways/{code}/webhooks", data=body, content_type="application/json",
        headers={SIGNATURE_HEADER: connector.signature(body)},
    )

    assert response.status_code == 200, response.content
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.status, payment.refunded_amount, payment.status) == (
        RefundStatus.COMPLETED, Decimal("10.20"), PaymentStatus.PARTIALLY_REFUNDED
    )


def test_one_run_of_the_job_takes_batch_after_batch_until_nothing_is_due(principal):
    from refunds.services import refunds_process_run

    payment = completed_payment(principal)
    for _ in range(5):
        refund_create(payment_id=payment.id, amount=Decimal("1.00"), principal=principal)

    assert refunds_process_run(seconds=60, batch_size=2) == {"completed": 5, "failed": 0, "waiting": 0, "flagged": 0}
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("5.00")


def test_a_run_takes_no_new_batch_once_its_time_is_up(principal):
    from refunds.services import refunds_process_run

    payment = completed_payment(principal)
    for _ in range(3):
        refund_create(payment_id=payment.id, amount=Decimal("1.00"), principal=principal)

    assert refunds_process_run(seconds=0, batch_size=2)["completed"] == 2


def test_a_failed_refund_the_gateway_later_says_it_made_holds_its_amount_and_cannot_be_retried(principal):
    from refunds.services import refund_available, refund_restart, refund_retry

    payment = completed_payment(principal)
    refund = refund_create(payment_id=payment.id, amount=Decimal("30.02"), principal=principal)
    refunds_process()
    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    payment.refresh_from_db()
    assert refund_available(payment) == Decimal("100.00")

    late = RefundResult(GatewayRefundStatus.SUCCEEDED, reference="sim_re_late", amount=Decimal("30.02"), currency="USD")
    refund = refund_apply_result(refund_id=refund.id, result=late, source="webhook")

    assert (refund.status, refund.needs_attention) == (RefundStatus.FAILED, True)
    payment.refresh_from_db()
    assert refund_available(payment) == Decimal("69.98")
    with pytest.raises(BusinessRuleViolation) as retried:
        refund_retry(refund_id=refund.id, staff_user="staff")
    assert retried.value.code == "REFUND_FLAGGED"
    assert refund_restart(refund_id=refund.id, staff_user="staff") is None
    assert Refund.objects.get(pk=refund.id).needs_attention
