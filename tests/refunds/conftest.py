"""What the refunds tests share: captured payments (made in bulk, or through the services), refunds
in each state, staff, and a refund brought to the batch's next run."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from gateways.base import RefundResult, RefundStatus as GatewayRefundStatus
from payments.models import GatewayOperation, Payment, PaymentStatus
from payments.services import payment_process, payment_validate
from refunds.models import Refund
from refunds.services import refund_apply_result, refund_create


def captured_payments(
    merchant, count: int, *, amount="10.00", currency="USD", status=PaymentStatus.COMPLETED
) -> list[Payment]:
    """`count` captured payments in a few statements: a bulk file's tests need thousands. They have
    no authorize operation (PaymentFactory makes one per payment); refunds do not look at it."""
    now = timezone.now()
    rows = [
        Payment(
            merchant=merchant,
            amount=Decimal(amount),
            currency=currency,
            from_account="account123",
            status=status,
            status_changed_at=now,
            gateway="simulator",
            captured_amount=Decimal(amount),
        )
        for _ in range(count)
    ]
    return Payment.objects.bulk_create(rows, batch_size=2000)


def failed_refund(payment, amount="4.00"):
    refund = refund_create(payment_id=payment.id, amount=Decimal(amount), reason="damaged")
    return refund_apply_result(
        refund_id=refund.id,
        result=RefundResult(GatewayRefundStatus.FAILED, error_code="REFUND_DECLINED", error_message="declined"),
        source="gateway",
    )


def flagged_refund(payment, amount="3.00"):
    """Answered with another amount than its own: flagged for staff, still Pending."""
    refund = refund_create(payment_id=payment.id, amount=Decimal(amount))
    return refund_apply_result(
        refund_id=refund.id,
        result=RefundResult(
            GatewayRefundStatus.SUCCEEDED, reference="sim_re_x", amount=Decimal("99.00"), currency=payment.currency
        ),
        source="webhook",
    )


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["refunds", "payments"], codename__in=codenames)
    )
    return user


@pytest.fixture
def uploader(django_user_model):
    return staff_with(django_user_model, "uploader", "upload_refundfile", "view_refundfile", "view_refund")


@pytest.fixture
def captured_payment(principal):
    """captured_payment(amount="100.00", currency="USD"): a payment the simulator completed, made
    through the services (the simulator holds its charge, so refunds of it go through)."""

    def make(amount: str = "100.00", currency: str = "USD"):
        draft = payment_validate(
            principal=principal, amount=Decimal(amount), currency=currency, from_account="account123", to_merchant=None
        )
        payment = payment_process(draft=draft, principal=principal)
        assert payment.status == PaymentStatus.COMPLETED
        return payment

    return make


@pytest.fixture
def no_send_task(monkeypatch):
    """The ids refund_create would queue to the Celery task after its commit, queued nowhere: tests
    that commit (transaction=True) leave no task in the shared broker for a later worker."""
    queued: list[str] = []
    monkeypatch.setattr("refunds.services._queue_send", queued.append)
    return queued


def make_refund_due(refund_id: str) -> None:
    """The refund's next look now, its lease ended: the next batch run takes it."""
    operation_id = Refund.objects.filter(pk=refund_id).values_list("operation_id", flat=True).get()
    GatewayOperation.objects.filter(pk=operation_id).update(
        next_look_at=timezone.now() - timedelta(seconds=1), lease_expires_at=None
    )
