"""manage.py process_refunds: the beat job's batch from a shell, with a progress bar and a summary;
--dry-run lists what is due and changes nothing."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from gateways.base import GatewayUnavailable
from gateways.simulator.connector import SimulatorConnector
from payments.models import GatewayAttempt, GatewayOperation
from refunds.models import Refund, RefundStatus
from refunds.services import refund_create

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("process_refunds", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_sends_what_is_due_and_prints_the_outcomes(captured_payment, principal):
    payment = captured_payment()
    refunds = [refund_create(payment_id=payment.id, amount=Decimal("10.00"), principal=principal) for _ in range(3)]

    out, err = run()

    assert out.strip() == "completed 3, failed 0, waiting 0, flagged 0"
    assert "3/3" in err  # the progress bar, on standard error
    assert set(Refund.objects.values_list("status", flat=True)) == {RefundStatus.COMPLETED}
    assert GatewayAttempt.objects.filter(operation="refund").count() == len(refunds)


def test_limit_takes_that_many_in_batches_of_the_configured_size(captured_payment, principal, settings):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "batch_size": 2}
    payment = captured_payment()
    for _ in range(5):
        refund_create(payment_id=payment.id, amount=Decimal("10.00"), principal=principal)

    out, _ = run("--limit", "3")

    assert out.strip() == "completed 3, failed 0, waiting 0, flagged 0"
    assert Refund.objects.filter(status=RefundStatus.PENDING).count() == 2
    out, _ = run("--limit", "10")
    assert out.strip() == "completed 2, failed 0, waiting 0, flagged 0"


def test_the_summary_counts_what_must_wait(captured_payment, principal, monkeypatch):
    payment = captured_payment()
    refund_create(payment_id=payment.id, amount=Decimal("10.00"), principal=principal)

    def unavailable(self, request):
        raise GatewayUnavailable("503", counts_for_breaker=False)

    monkeypatch.setattr(SimulatorConnector, "refund", unavailable)

    out, _ = run()

    assert out.strip() == "completed 0, failed 0, waiting 1, flagged 0"


def test_dry_run_lists_the_due_refunds_and_changes_nothing(captured_payment, principal):
    payment = captured_payment()
    due = refund_create(payment_id=payment.id, amount=Decimal("12.50"), principal=principal)
    later = refund_create(payment_id=payment.id, amount=Decimal("5.00"), principal=principal)
    GatewayOperation.objects.filter(refund=later).update(next_look_at=timezone.now() + timedelta(minutes=5))
    GatewayOperation.objects.filter(refund=due).update(attempts=2)
    before = list(GatewayOperation.objects.order_by("id").values_list("id", "next_look_at", "lease_expires_at", "attempts"))

    out, _ = run("--dry-run")

    lines = out.strip().splitlines()
    assert lines[0] == "1 refund(s) due"
    assert lines[1].split() == [due.id, "payment", payment.id, "12.50", "USD", "attempts", "2"]
    after = list(GatewayOperation.objects.order_by("id").values_list("id", "next_look_at", "lease_expires_at", "attempts"))
    assert after == before  # no lease taken, nothing rescheduled
    assert not GatewayAttempt.objects.filter(operation="refund").exists()
    assert Refund.objects.get(pk=due.id).status == RefundStatus.PENDING


def test_a_limit_below_one_is_refused():
    with pytest.raises(CommandError):
        run("--limit", "0")
