"""What the refund tests share: a captured payment made through the services, and a refund
brought to the batch's next run."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.models import GatewayOperation, PaymentStatus
from payments.services import payment_process, payment_validate
from refunds.models import Refund


@pytest.fixture
def captured_payment(principal):
    """captured_payment(amount="100.00", currency="USD"): a payment the simulator completed."""

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
