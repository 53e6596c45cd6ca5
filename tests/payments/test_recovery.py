"""Recovery: payments whose outcome PGI does not know are settled by asking their gateway, with
backoff, and flagged for staff after the limit. Against PostgreSQL, Redis and the simulator."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from gateways.base import Operation, PaymentRequest
from gateways.models import SimulatorCharge
from gateways.registry import get_connector
from payments.models import GatewayAttempt, Payment, PaymentStatus, PaymentStatusChange
from payments.services import payment_create, payment_note, payment_recovery_restart, payment_transition, payments_recover
from payments.services.core import PaymentDraft
from payments.services.authorize import payment_request_for
from payments.services.calls import recovery_due_from
from payments.services.operations import operation_start
from payments.services.recovery import backoff_seconds

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..conftest import simulator_outage_set
from ..factories import make_due, put_in_flight

pytestmark = pytest.mark.django_db


def processing_without_gateway_call(merchant, principal, account: str = "account123", capture: bool = True) -> Payment:
    """A payment committed as Processing whose gateway call never happened or whose answer was lost
    (PGI crashed between the commit and the call, or between the call and the next commit)."""
    draft = PaymentDraft(
        merchant=merchant, amount=Decimal("50.00"), currency="USD", from_account=account, capture=capture
    )
    payment = payment_create(draft=draft, principal=principal)
    payment = payment_transition(
        payment_id=payment.id,
        to_status=PaymentStatus.PROCESSING,
        source="system",
        reason="sent to simulator",
        gateway="simulator",
    )
    operation_start(
        payment=payment, kind="authorize", amount=payment.amount, key=payment.id, first_look_at=recovery_due_from()
    )
    return payment


def attempts(payment_id: str) -> list[tuple[str, str]]:
    return list(
        GatewayAttempt.objects.filter(payment_id=payment_id).order_by("created_at", "id").values_list("operation", "outcome")
    )


def test_gateway_timed_out_after_charging_is_completed_by_recovery(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0408"))
    payment_id = response.json()["id"]
    assert response.json()["status"] == "Processing"

    # Not before the grace period: the webhook may still come.
    assert payments_recover() == {"settled": 0, "waiting": 0, "flagged": 0}
    make_due(payment_id)
    assert payments_recover() == {"settled": 1, "waiting": 0, "flagged": 0}

    payment = Payment.objects.get(pk=payment_id)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.gateway_reference == SimulatorCharge.objects.get(idempotency_key=payment_id).reference
    assert attempts(payment_id) == [("authorize", "timeout"), ("status", "succeeded")]
    last = PaymentStatusChange.objects.filter(payment_id=payment_id).last()
    assert (last.from_status, last.to_status, last.source) == ("Processing", "Completed", "system")
    assert "recovered" in last.reason
    assert SimulatorCharge.objects.filter(idempotency_key=payment_id).count() == 1


def test_crash_after_the_gateway_charged_is_completed_by_recovery(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal)
    get_connector("simulator").authorize(payment_request_for(payment))  # charged; PGI never heard
    make_due(payment.id)

    payments_recover()

    assert Payment.objects.get(pk=payment.id).status == PaymentStatus.COMPLETED
    assert attempts(payment.id) == [("status", "succeeded")]


def test_a_payment_the_gateway_never_received_is_sent_again_once(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal)
    make_due(payment.id)

    payments_recover()

    assert Payment.objects.get(pk=payment.id).status == PaymentStatus.COMPLETED
    assert attempts(payment.id) == [("status", "not_found"), ("authorize", "succeeded")]
    assert SimulatorCharge.objects.filter(idempotency_key=payment.id).count() == 1


def test_a_declined_payment_found_by_recovery_fails_with_the_gateway_code(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal, account="account0051")
    get_connector("simulator").authorize(payment_request_for(payment))
    make_due(payment.id)

    payments_recover()

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "INSUFFICIENT_FUNDS")


def test_an_authorization_found_by_recovery_leaves_the_payment_authorized(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal, capture=False)
    get_connector("simulator").authorize(payment_request_for(payment))
    make_due(payment.id)

    payments_recover()

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.authorization_expires_at is not None


def test_gateway_down_during_recovery_waits_with_growing_backoff(merchant, principal, settings):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "base_seconds": 60, "max_backoff_seconds": 3600}
    payment = processing_without_gateway_call(merchant, principal)
    simulator_outage_set("simulator", True)

    delays = []
    for expected_attempts in (1, 2, 3):
        make_due(payment.id)
        before = timezone.now()
        assert payments_recover() == {"settled": 0, "waiting": 1, "flagged": 0}
        payment.refresh_from_db()
        assert payment.recovery_attempts == expected_attempts
        delays.append(round((payment.next_recovery_at - before).total_seconds()))

    assert delays == [60, 120, 240]
    assert payment.status == PaymentStatus.PROCESSING
    assert backoff_seconds(20) == 3600


def test_after_the_limit_the_payment_is_flagged_for_staff_and_can_be_restarted(merchant, principal, settings):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "max_attempts": 3}
    payment = processing_without_gateway_call(merchant, principal, account="account0202")
    get_connector("simulator").authorize(payment_request_for(payment))  # pending: no webhook comes here

    outcomes = []
    for _ in range(3):
        make_due(payment.id)
        outcomes.append(payments_recover())

    assert outcomes[-1] == {"settled": 0, "waiting": 0, "flagged": 1}
    payment.refresh_from_db()
    assert payment.needs_attention is True
    assert "no final answer after 3 looks" in payment.attention_reason
    assert payment.status == PaymentStatus.PROCESSING
    make_due(payment.id)
    assert payments_recover() == {"settled": 0, "waiting": 0, "flagged": 0}  # flagged ones are left alone

    assert payment_recovery_restart(payment_id=payment.id, staff_user="alice") is not None
    payment.refresh_from_db()
    assert (payment.needs_attention, payment.recovery_attempts) == (False, 0)
    assert PaymentStatusChange.objects.filter(payment=payment, source="staff", reason__contains="alice").exists()


def test_a_capture_whose_answer_was_lost_is_sent_again(merchant, principal, api):
    response = post_json(api, PAYMENTS_URL, payment_body(capture=False))
    payment_id = response.json()["id"]
    # The capture was claimed and sent, and PGI lost the answer.
    payment_note(payment_id=payment_id, source="api", reason="capture sent")
    put_in_flight(
        payment_id, Operation.CAPTURE.value, amount=Decimal("20.00"), look_at=timezone.now() - timedelta(seconds=1)
    )

    assert payments_recover()["settled"] == 1

    payment = Payment.objects.get(pk=payment_id)
    assert (payment.status, payment.captured_amount, payment.pending_operation) == ("Completed", Decimal("20.0000"), "")
    assert attempts(payment_id)[-1] == ("capture", "succeeded")


@pytest.mark.django_db(transaction=True)
def test_concurrent_recovery_runs_look_at_each_payment_once(merchant, principal):
    payments = [processing_without_gateway_call(merchant, principal) for _ in range(6)]
    for payment in payments:
        get_connector("simulator").authorize(payment_request_for(payment))
        make_due(payment.id)
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(payments_recover())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(result["settled"] for result in results) == 6
    for payment in payments:
        assert attempts(payment.id) == [("status", "succeeded")]
        assert Payment.objects.get(pk=payment.id).status == PaymentStatus.COMPLETED


def test_recovery_runs_as_a_celery_task_on_a_real_worker(celery_worker, merchant_key, settings):
    from payments.tasks import payments_recover as task
    from tests.conftest import client_for

    response = post_json(client_for(merchant_key), PAYMENTS_URL, payment_body(fromAccount="account0408"))
    payment_id = response.json()["id"]
    make_due(payment_id)

    task.delay()
    deadline = timezone.now() + timedelta(seconds=30)
    while timezone.now() < deadline:
        if Payment.objects.get(pk=payment_id).status == PaymentStatus.COMPLETED:
            break
        threading.Event().wait(0.2)
    assert Payment.objects.get(pk=payment_id).status == PaymentStatus.COMPLETED


def test_beat_schedules_recovery_and_expiry(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {"payments.tasks.payments_recover", "payments.tasks.authorizations_expire"} <= tasks


def test_request_for_recovery_carries_the_original_payment(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal, capture=False)

    assert payment_request_for(Payment.objects.select_related("merchant").get(pk=payment.id)) == PaymentRequest(
        payment_id=payment.id,
        amount=payment.amount,
        currency="USD",
        from_account="account123",
        merchant_code="merchant456",
        description="",
        capture=False,
    )


def test_a_gateway_that_forgot_the_idempotency_key_is_not_sent_the_payment_again(merchant, principal, monkeypatch):
    payment = processing_without_gateway_call(merchant, principal)
    Payment.objects.filter(pk=payment.id).update(created_at=timezone.now() - timedelta(days=2))
    monkeypatch.setattr(get_connector("simulator"), "replay_window", timedelta(hours=24))
    make_due(payment.id)

    assert payments_recover() == {"settled": 0, "waiting": 0, "flagged": 1}

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention) == (PaymentStatus.PROCESSING, True)
    assert "remembers idempotency keys" in payment.attention_reason
    assert attempts(payment.id) == [("status", "not_found")]
    assert not SimulatorCharge.objects.filter(idempotency_key=payment.id).exists()


def test_an_open_circuit_does_not_use_up_recovery_attempts(merchant, principal, settings):
    from gateways.breaker import breaker_for

    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 600}
    payment = processing_without_gateway_call(merchant, principal)
    breaker_for("simulator").record_failure()
    make_due(payment.id)

    assert payments_recover() == {"settled": 0, "waiting": 1, "flagged": 0}

    payment.refresh_from_db()
    assert payment.recovery_attempts == 0
    assert attempts(payment.id) == []


def test_a_late_answer_clears_the_staff_flag(merchant, principal):
    payment = processing_without_gateway_call(merchant, principal)
    no_answer = {"needs_attention": True, "attention_reason": "x", "attention_code": "NO_FINAL_ANSWER"}
    payment_note(payment_id=payment.id, source="system", reason="flagged", **no_answer)
    get_connector("simulator").authorize(payment_request_for(payment))
    payment_recovery_restart(payment_id=payment.id, staff_user="alice")
    payment_note(payment_id=payment.id, source="system", reason="flagged again", **no_answer)
    from payments.services import payment_apply_gateway_result

    payment_apply_gateway_result(
        payment_id=payment.id,
        operation=Operation.AUTHORIZE,
        result=get_connector("simulator").status(payment_id=payment.id),
        source="webhook",
    )

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.attention_reason) == ("Completed", False, "")


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_flags_raised_before_their_kind_was_kept_the_safe_way(merchant, migrated_back):
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("payments", "0004_pending_operation_keys")], [("payments", "0005_attention_code")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        OldPayment = executor.loader.project_state(before).apps.get_model("payments", "Payment")
        reasons = {
            "looks": "no final answer after 12 looks; last: simulator: GatewayTimeout",
            "window": "adyen has no record of it and remembers idempotency keys for 31 days only: …",
            "gone": "gateway 'old' is no longer configured",
            "amount": "authorize answer of 999.00 USD for a payment of 50.00 USD",
        }
        for name, reason in reasons.items():
            OldPayment.objects.create(
                id=f"pay_{name}", merchant_id=merchant.pk, amount=Decimal("50"), currency="USD",
                from_account="account123", status="Processing", status_changed_at=timezone.now(),
                needs_attention=True, attention_reason=reason,
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)

    codes = dict(Payment.objects.values_list("id", "attention_code"))
    assert codes == {"pay_looks": "NO_FINAL_ANSWER", "pay_window": "NO_FINAL_ANSWER", "pay_gone": "NO_FINAL_ANSWER", "pay_amount": ""}
    assert not Payment.objects.get(pk="pay_amount").flag_clears_on_answer
