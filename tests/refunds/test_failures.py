"""Refunds when the gateway does not simply say yes: unavailable, timing out, declining, answering
pending, kept out by its circuit breaker. The simulator answers; its refund method is replaced
where a test needs an answer it does not give."""

from decimal import Decimal

import pytest
from django.utils import timezone

from gateways.base import GatewayTimeout, GatewayUnavailable, RefundResult, RefundStatus as GatewayRefundStatus
from gateways.breaker import breaker_for
from gateways.models import GatewayNotification, SimulatorCharge, SimulatorRefund
from gateways.registry import get_connector
from gateways.services import notification_receive
from gateways.simulator.connector import SimulatorConnector
from gateways.simulator.webhooks import SIGNATURE_HEADER
from payments.models import GatewayAttempt, OperationStatus, Payment, PaymentStatus
from pgi.errors import BusinessRuleViolation
from refunds.models import Refund, RefundStatus, RefundStatusChange
from refunds.services import (
    refund_apply_result,
    refund_cancel,
    refund_create,
    refund_restart,
    refunds_due_list,
    refunds_process,
)

from ..conftest import simulator_outage_set
from .conftest import make_refund_due

pytestmark = pytest.mark.django_db

ORIGINAL_REFUND = SimulatorConnector.refund


@pytest.fixture
def policy(settings):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "max_attempts": 4, "base_seconds": 60, "max_backoff_seconds": 3600}
    return settings.PGI_RECOVERY


@pytest.fixture
def refund(captured_payment, principal):
    payment = captured_payment("100.00")
    return refund_create(payment_id=payment.id, amount=Decimal("30.00"), principal=principal)


def run_batch(refund_id: str) -> str:
    """Bring the refund to its next look and run the batch once; the one outcome it reports."""
    make_refund_due(refund_id)
    counts = refunds_process()
    assert sum(counts.values()) == 1, counts
    return next(outcome for outcome, count in counts.items() if count)


def fresh(refund_id: str) -> Refund:
    return Refund.objects.select_related("operation", "payment").get(pk=refund_id)


def attempts_of(refund_id: str) -> list[tuple[str, str]]:
    return list(GatewayAttempt.objects.filter(operation="refund").values_list("idempotency_key", "outcome"))


def test_an_unavailable_gateway_makes_it_wait_longer_each_time_then_fail_as_never_sent(refund, policy, monkeypatch):
    def unavailable(self, request):
        raise GatewayUnavailable("503 from the gateway", counts_for_breaker=False)

    monkeypatch.setattr(SimulatorConnector, "refund", unavailable)
    waits = []
    for attempt in range(1, policy["max_attempts"]):
        before = timezone.now()
        assert run_batch(refund.id) == "waiting"
        current = fresh(refund.id)
        assert (current.status, current.operation.attempts) == (RefundStatus.PENDING, attempt)
        waits.append((current.operation.next_look_at - before).total_seconds())
        assert current.operation.lease_expires_at is None
    assert [round(w / 60) for w in waits] == [1, 2, 4]  # base_seconds, doubled each time

    assert run_batch(refund.id) == "failed"

    current = fresh(refund.id)
    assert (current.status, current.failure_code) == (RefundStatus.FAILED, "GATEWAY_UNAVAILABLE")
    assert (current.operation.status, current.operation.next_look_at) == (OperationStatus.NOT_SENT, None)
    assert attempts_of(refund.id) == [(refund.id, "unavailable")] * policy["max_attempts"]
    assert not SimulatorRefund.objects.exists()
    # Nothing was refunded: the whole payment is refundable again.
    assert refund_create(payment_id=refund.payment_id, amount=Decimal("100.00")).status == RefundStatus.PENDING


def test_an_open_circuit_does_not_use_up_attempts(refund, policy, settings):
    settings.PGI_RECOVERY = {**policy, "max_attempts": 12}
    simulator_outage_set("simulator", True)  # a real outage: its failures count for the breaker
    threshold = settings.PGI_CIRCUIT_BREAKER["failure_threshold"]
    for _ in range(threshold):
        assert run_batch(refund.id) == "waiting"
    assert breaker_for("simulator").allow() is False  # open now

    for _ in range(3):
        assert run_batch(refund.id) == "waiting"

    current = fresh(refund.id)
    assert (current.status, current.operation.attempts) == (RefundStatus.PENDING, threshold)
    assert current.operation.next_look_at > timezone.now()
    assert attempts_of(refund.id) == [(refund.id, "unavailable")] * threshold  # no call while open
    simulator_outage_set("simulator", False)
    breaker_for("simulator").reset()
    assert run_batch(refund.id) == "completed"


def test_a_timeout_is_sent_again_with_the_same_key_and_completes_once(refund, policy, monkeypatch):
    calls = []

    def refunds_then_times_out_once(self, request):
        calls.append(request.refund_id)
        result = ORIGINAL_REFUND(self, request)  # the gateway refunds …
        if len(calls) == 1:
            raise GatewayTimeout("read timeout")  # … and its answer is lost
        return result

    monkeypatch.setattr(SimulatorConnector, "refund", refunds_then_times_out_once)

    assert run_batch(refund.id) == "waiting"
    assert (fresh(refund.id).status, fresh(refund.id).operation.attempts) == (RefundStatus.PENDING, 1)
    assert Payment.objects.get(pk=refund.payment_id).refunded_amount == 0

    assert run_batch(refund.id) == "completed"

    assert calls == [refund.id, refund.id]
    assert attempts_of(refund.id) == [(refund.id, "timeout"), (refund.id, "succeeded")]
    assert SimulatorRefund.objects.filter(refund_id=refund.id).count() == 1  # refunded once at the gateway
    payment = Payment.objects.get(pk=refund.payment_id)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("30.00"))


def test_timeouts_until_the_last_try_flag_it_for_staff_and_a_restart_sends_it_again(refund, policy, monkeypatch):
    def times_out(self, request):
        raise GatewayTimeout("read timeout")

    monkeypatch.setattr(SimulatorConnector, "refund", times_out)
    outcomes = [run_batch(refund.id) for _ in range(policy["max_attempts"])]

    assert outcomes == ["waiting"] * (policy["max_attempts"] - 1) + ["flagged"]
    current = fresh(refund.id)
    assert (current.status, current.needs_attention) == (RefundStatus.PENDING, True)  # may have been refunded
    assert (current.operation.status, current.operation.next_look_at) == (OperationStatus.PENDING, None)
    assert current.operation.attempts == policy["max_attempts"]
    assert not refunds_due_list(limit=10)  # the batch no longer takes it
    with pytest.raises(BusinessRuleViolation) as refused:
        refund_cancel(refund_id=refund.id, staff_user="ops", reason="stuck")
    assert refused.value.code == "REFUND_NOT_CANCELLABLE"

    restarted = refund_restart(refund_id=refund.id, staff_user="ops")

    assert (restarted.needs_attention, restarted.operation.attempts) == (False, 0)
    assert [r.id for r in refunds_due_list(limit=10)] == [refund.id]
    monkeypatch.setattr(SimulatorConnector, "refund", ORIGINAL_REFUND)
    assert refunds_process() == {"completed": 1, "failed": 0, "waiting": 0, "flagged": 0}
    reasons = list(RefundStatusChange.objects.filter(refund_id=refund.id).values_list("to_status", "reason"))
    assert reasons[-1][0] == RefundStatus.COMPLETED
    assert any(reason.startswith("flagged for staff") for _, reason in reasons)
    assert any(reason.startswith("restarted by ops") for _, reason in reasons)


def test_a_declined_refund_fails_with_the_gateways_code_and_frees_the_amount(refund):
    # The gateway holds less captured money than PGI thinks: it refuses the refund.
    SimulatorCharge.objects.filter(idempotency_key=refund.payment_id).update(captured_amount=Decimal("10.00"))

    assert run_batch(refund.id) == "failed"

    current = fresh(refund.id)
    assert (current.status, current.failure_code) == (RefundStatus.FAILED, "INVALID_REQUEST")
    assert "remains captured" in current.failure_message
    assert current.operation.status == OperationStatus.FAILED
    assert attempts_of(refund.id) == [(refund.id, "declined")]
    payment = Payment.objects.get(pk=refund.payment_id)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.COMPLETED, 0)
    assert refund_create(payment_id=payment.id, amount=Decimal("100.00")).amount == Decimal("100.00")


def pending_answer(self, request):
    """The gateway takes the refund and does it, but answers `pending`: its webhook says the rest."""
    done = ORIGINAL_REFUND(self, request)
    return RefundResult(GatewayRefundStatus.PENDING, reference=done.reference, amount=done.amount, currency=done.currency)


def test_a_pending_answer_waits_and_the_gateways_webhook_completes_it(refund, policy, monkeypatch):
    monkeypatch.setattr(SimulatorConnector, "refund", pending_answer)

    assert run_batch(refund.id) == "waiting"
    current = fresh(refund.id)
    assert (current.status, current.operation.attempts) == (RefundStatus.PENDING, 1)
    assert current.operation.next_look_at > timezone.now()
    assert current.gateway_reference  # kept from the pending answer

    connector = get_connector("simulator")
    done = SimulatorRefund.objects.select_related("charge").get(refund_id=refund.id)
    body = connector.webhook_body(done.charge, refund=done)
    [event] = connector.parse_webhook(headers={SIGNATURE_HEADER: connector.signature(body)}, body=body)
    receipt = notification_receive(gateway="simulator", event=event)

    assert receipt.notification.outcome == GatewayNotification.Outcome.APPLIED
    current = fresh(refund.id)
    assert (current.status, current.operation.status) == (RefundStatus.COMPLETED, OperationStatus.SUCCEEDED)
    assert current.status_changes.last().source == "webhook"
    assert Payment.objects.get(pk=refund.payment_id).refunded_amount == Decimal("30.00")
    assert not refunds_due_list(limit=10)


def test_pending_answers_until_the_last_look_flag_it_for_staff(refund, policy, monkeypatch):
    monkeypatch.setattr(SimulatorConnector, "refund", pending_answer)

    outcomes = [run_batch(refund.id) for _ in range(policy["max_attempts"])]

    assert outcomes == ["waiting"] * (policy["max_attempts"] - 1) + ["flagged"]
    current = fresh(refund.id)
    assert (current.status, current.needs_attention, current.operation.next_look_at) == (RefundStatus.PENDING, True, None)
    assert current.operation.attempts == policy["max_attempts"]


def test_a_pending_notice_on_a_flagged_refund_does_not_put_it_back_in_the_batch(refund, policy, monkeypatch):
    # Flagged for an answer of another amount: staff must look, the batch no longer takes it.
    wrong = RefundResult(GatewayRefundStatus.SUCCEEDED, reference="simr_x", amount=Decimal("31.00"), currency="USD")
    refund_apply_result(refund_id=refund.id, result=wrong, source="webhook")
    assert fresh(refund.id).needs_attention and not refunds_due_list(limit=10)

    still_going = RefundResult(GatewayRefundStatus.PENDING, reference="simr_x", amount=Decimal("30.00"), currency="USD")
    refund_apply_result(refund_id=refund.id, result=still_going, source="webhook")

    current = fresh(refund.id)
    assert (current.needs_attention, current.operation.next_look_at) == (True, None)
    assert not refunds_due_list(limit=10)
