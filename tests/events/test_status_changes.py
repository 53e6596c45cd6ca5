"""An event for every status a payment or a refund reaches through the real services, in order."""

from decimal import Decimal

import pytest
from django.db.models import F

from payments.models import PaymentStatusChange
from payments.services import payment_cancel, payment_capture
from pgi.events.models import OutboxEvent
from refunds.models import Refund, RefundStatus
from refunds.services import refund_cancel, refund_claim, refund_create, refund_send

from .conftest import assert_valid, rows_for, types_for

pytestmark = pytest.mark.django_db


def assert_one_event_per_status_change(payment_id: str) -> None:
    """Every status change in the payment's history has its event, in the same order, with the same
    status. A note (a history line that keeps the status) is no status change and has none."""
    history = list(
        PaymentStatusChange.objects.filter(payment_id=payment_id)
        .exclude(from_status=F("to_status"))
        .order_by("id")
        .values_list("to_status", flat=True)
    )
    messages = [assert_valid(row) for row in rows_for(payment_id) if row.event_type.startswith("PAYMENT_")]
    assert [m["details"]["status"] for m in messages] == history
    for row in rows_for(payment_id, "payment-notifications"):
        assert_valid(row)


def test_a_successful_payment_is_created_processing_then_processed(process):
    payment = process()

    assert types_for(payment.id) == ["PAYMENT_CREATED", "PAYMENT_STATUS_UPDATED", "PAYMENT_PROCESSED"]
    assert types_for(payment.id, "payment-notifications") == ["PAYMENT_PROCESSED"]
    assert_one_event_per_status_change(payment.id)


def test_a_declined_payment_ends_with_payment_failed(process):
    payment = process(from_account="acct-0051")

    assert types_for(payment.id) == ["PAYMENT_CREATED", "PAYMENT_STATUS_UPDATED", "PAYMENT_FAILED"]
    assert types_for(payment.id, "payment-notifications") == ["PAYMENT_FAILED"]
    assert_one_event_per_status_change(payment.id)


def test_an_authorization_then_its_capture(process):
    payment = process(capture=False)
    assert types_for(payment.id)[-1] == "PAYMENT_AUTHORIZED"
    assert types_for(payment.id, "payment-notifications") == []

    payment_capture(payment=payment, amount=Decimal("30.00"))

    assert types_for(payment.id)[-1] == "PAYMENT_PROCESSED"
    assert types_for(payment.id, "payment-notifications") == ["PAYMENT_PROCESSED"]
    assert_one_event_per_status_change(payment.id)


def test_an_authorization_then_its_cancel(process):
    payment = process(capture=False)

    payment_cancel(payment=payment)

    assert types_for(payment.id)[-2:] == ["PAYMENT_AUTHORIZED", "PAYMENT_CANCELLED"]
    assert types_for(payment.id, "payment-notifications") == []
    assert_one_event_per_status_change(payment.id)


def sent(refund: Refund) -> Refund:
    assert refund_claim(refund.id)
    refund_send(refund_id=refund.id)
    return Refund.objects.get(pk=refund.id)


def test_refunds_completed_and_failed_are_published_under_the_payments_key(process, principal):
    payment = process(amount="100.00")
    completed = sent(refund_create(payment_id=payment.id, amount=Decimal("30.00"), principal=principal))
    failed = sent(refund_create(payment_id=payment.id, amount=Decimal("10.02"), principal=principal))
    assert (completed.status, failed.status) == (RefundStatus.COMPLETED, RefundStatus.FAILED)

    refund_rows = [row for row in rows_for(payment.id) if row.event_type.startswith("REFUND_")]
    assert [(row.event_type, assert_valid(row)["details"]["refundId"]) for row in refund_rows] == [
        ("REFUND_CREATED", completed.id),
        ("REFUND_COMPLETED", completed.id),
        ("REFUND_CREATED", failed.id),
        ("REFUND_FAILED", failed.id),
    ]
    done = assert_valid(refund_rows[1])["details"]
    assert (done["amount"], done["currency"], done["status"], done["previousStatus"]) == (
        Decimal("30.00"),
        "USD",
        "Completed",
        "Pending",
    )
    assert '"amount":30.00,' in refund_rows[1].body
    assert assert_valid(refund_rows[3])["details"]["failureCode"] == "DECLINED"
    # The payment's own move to PartiallyRefunded is a status update of the payment.
    assert types_for(payment.id)[-5:] == [
        "REFUND_CREATED",
        "REFUND_COMPLETED",
        "PAYMENT_STATUS_UPDATED",
        "REFUND_CREATED",
        "REFUND_FAILED",
    ]
    assert types_for(payment.id, "payment-notifications") == ["PAYMENT_PROCESSED", "REFUND_COMPLETED", "REFUND_FAILED"]
    assert_one_event_per_status_change(payment.id)
    notice = assert_valid(rows_for(payment.id, "payment-notifications")[1])
    assert notice["message"] == f"Refund {completed.id} of 30.00 USD for payment {payment.id} completed."


def test_a_refund_cancelled_by_staff_is_published(process, principal):
    payment = process(amount="100.00")
    refund = refund_create(payment_id=payment.id, amount=Decimal("5.00"), principal=principal)

    refund_cancel(refund_id=refund.id, staff_user="alice", reason="customer kept the goods")

    assert types_for(payment.id)[-2:] == ["REFUND_CREATED", "REFUND_CANCELLED"]
    assert OutboxEvent.objects.filter(event_type="REFUND_CANCELLED", topic="payment-notifications").count() == 0


def test_a_bulk_file_announces_each_of_its_refunds_once(merchant):
    from django.contrib.auth import get_user_model

    from refunds.bulk import refund_file_upload
    from tests.factories import PaymentFactory

    user = get_user_model().objects.create_user("uploader", is_staff=True)
    payments = [PaymentFactory(merchant=merchant, amount="10.00", captured_amount="10.00") for _ in range(3)]
    content = ("payment_id,amount,reason\n" + "".join(f"{p.id},4.00,damaged\n" for p in payments)).encode()

    refund_file = refund_file_upload(name="r.csv", content=content, user=user)

    created = OutboxEvent.objects.filter(event_type="REFUND_CREATED")
    assert sorted(created.values_list("key", flat=True)) == sorted(p.id for p in payments)
    assert set(created.values_list("payload__details__refundId", flat=True)) == set(
        refund_file.refunds.values_list("pk", flat=True)
    )
