"""The task queued after a refund's commit sends it, unless the batch job already holds it."""

from decimal import Decimal

import pytest

from payments.models import GatewayAttempt
from refunds import tasks
from refunds.models import Refund, RefundStatus
from refunds.services import refund_create, refunds_due

pytestmark = pytest.mark.django_db


def test_the_task_sends_a_refund_just_accepted(captured_payment):
    refund = refund_create(payment_id=captured_payment().id, amount=Decimal("10.00"))

    assert tasks.refund_send(refund.id) == "completed"
    assert tasks.refund_send(refund.id) == "skipped"  # a redelivered task: final, nothing to send
    assert GatewayAttempt.objects.filter(operation="refund").count() == 1


def test_the_task_skips_a_refund_the_batch_job_holds(captured_payment):
    refund = refund_create(payment_id=captured_payment().id, amount=Decimal("10.00"))
    assert refunds_due(10) == [refund.id]  # the batch took it first (lease)

    assert tasks.refund_send(refund.id) == "skipped"
    assert Refund.objects.get(pk=refund.id).status == RefundStatus.PENDING
    assert not GatewayAttempt.objects.filter(operation="refund").exists()
