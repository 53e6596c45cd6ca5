"""The migration that carries operations in flight out of the payment's columns into rows (0007),
run on rows made in the old shape."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from payments.models import GatewayOperation, Payment
from payments.services.operations import operation_key_next

OLD = [("payments", "0005_attention_code")]
CARRIED = [("payments", "0008_drop_operation_columns")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_operations_in_flight_and_their_recovery_are_carried_into_rows(merchant, migrated_back):
    apps = migrate(OLD)
    OldPayment = apps.get_model("payments", "Payment")
    OldAttempt = apps.get_model("payments", "GatewayAttempt")
    now = timezone.now()
    look = now + timedelta(minutes=3)

    def old(pid, status, **fields):
        return OldPayment.objects.create(
            id=pid, merchant_id=merchant.pk, amount=Decimal("50"), currency="USD", from_account="account123",
            status=status, status_changed_at=now, gateway="simulator", **fields,
        )

    old("pay_pending", "Pending")
    old("pay_processing", "Processing", recovery_attempts=3, next_recovery_at=look)
    old("pay_flagged", "Processing", recovery_attempts=12, needs_attention=True, attention_code="NO_FINAL_ANSWER")
    old("pay_capture", "Authorized", capture=False, pending_operation="capture", pending_amount=Decimal("20"),
        pending_key="pay_capture-capture-2", pending_since=now - timedelta(minutes=1), operations_sent=2,
        recovery_attempts=1, next_recovery_at=look)
    # From before each operation kept its key: the derived one.
    old("pay_expiry", "Authorized", capture=False, pending_operation="void", pending_expiry=True,
        operations_sent=1, next_recovery_at=look)
    refused = old("pay_refused", "Authorized", capture=False, operations_sent=1)
    OldAttempt.objects.create(payment=refused, operation="capture", gateway="simulator",
                              idempotency_key="pay_refused-capture", outcome="declined")
    old("pay_completed", "Completed", captured_amount=Decimal("50"))
    old("pay_failed", "Failed", failure_code="DECLINED")

    migrate(CARRIED)

    rows = {
        (op.payment_id, op.kind): (op.status, op.amount, op.idempotency_key, op.by_expiry, op.attempts, op.next_look_at)
        for op in GatewayOperation.objects.all()
    }
    assert rows == {
        ("pay_processing", "authorize"): ("pending", Decimal("50"), "pay_processing", False, 3, look),
        ("pay_flagged", "authorize"): ("pending", Decimal("50"), "pay_flagged", False, 12, None),
        ("pay_capture", "authorize"): ("succeeded", Decimal("50"), "pay_capture", False, 0, None),
        ("pay_capture", "capture"): ("pending", Decimal("20"), "pay_capture-capture-2", False, 1, look),
        ("pay_expiry", "authorize"): ("succeeded", Decimal("50"), "pay_expiry", False, 0, None),
        ("pay_expiry", "void"): ("pending", Decimal("50"), "pay_expiry-void", True, 0, look),
        ("pay_refused", "authorize"): ("succeeded", Decimal("50"), "pay_refused", False, 0, None),
        ("pay_completed", "authorize"): ("succeeded", Decimal("50"), "pay_completed", False, 0, None),
        ("pay_failed", "authorize"): ("failed", Decimal("50"), "pay_failed", False, 0, None),
    }
    # What the payments say of it now, through the rows.
    capture = Payment.objects.get(pk="pay_capture")
    assert (capture.pending_operation, capture.pending_amount, capture.recovery_attempts) == ("capture", Decimal("20"), 1)
    assert Payment.objects.get(pk="pay_processing").next_recovery_at == look
    assert set(Payment.objects.outcome_unknown().values_list("pk", flat=True)) == {
        "pay_processing", "pay_flagged", "pay_capture", "pay_expiry",
    }
    # A refused capture from before left only its attempt: the next one never reuses its key.
    assert operation_key_next(payment=Payment.objects.get(pk="pay_refused"), kind="capture") == "pay_refused-capture-2"


@pytest.mark.django_db(transaction=True)
def test_the_carried_rows_go_back_into_the_columns_when_migrated_back(merchant, migrated_back):
    apps = migrate(OLD)
    now = timezone.now()
    apps.get_model("payments", "Payment").objects.create(
        id="pay_capture", merchant_id=merchant.pk, amount=Decimal("50"), currency="USD", from_account="account123",
        status="Authorized", status_changed_at=now, gateway="simulator", capture=False, pending_operation="capture",
        pending_amount=Decimal("20"), pending_key="pay_capture-capture", operations_sent=1, recovery_attempts=2,
        next_recovery_at=now,
    )
    migrate(CARRIED)

    apps = migrate(OLD)

    back = apps.get_model("payments", "Payment").objects.get(pk="pay_capture")
    assert (back.pending_operation, back.pending_amount, back.pending_key, back.recovery_attempts, back.next_recovery_at) == (
        "capture", Decimal("20"), "pay_capture-capture", 2, now,
    )
