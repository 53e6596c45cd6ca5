"""Refunds under real concurrency: threads, each with its own PostgreSQL connection, against the
services and the simulator. What is decided under the payment's row lock, the batch's
SKIP LOCKED and lease, and the one-time application of an answer are tested here, not reasoned."""

import threading
import time
from datetime import timedelta
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from gateways.base import Operation
from gateways.models import GatewayNotification, SimulatorRefund
from gateways.registry import get_connector
from gateways.services import notification_receive
from gateways.simulator.connector import SimulatorConnector
from gateways.simulator.webhooks import SIGNATURE_HEADER
from payments.models import GatewayAttempt, GatewayOperation, OperationKind, Payment, PaymentStatus, PaymentStatusChange
from pgi.errors import BusinessRuleViolation
from refunds.models import Refund, RefundStatus, RefundStatusChange, new_refund_id
from refunds.services import refund_claim, refund_create, refund_send, refunds_process

from .conftest import make_refund_due

pytestmark = pytest.mark.django_db(transaction=True)


def run_threads(target, count: int, timeout: float = 120) -> list:
    """Run target(index) on `count` threads; each closes its connection. Re-raises the first error."""
    results, errors = [None] * count, []

    def body(index):
        try:
            results[index] = target(index)
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def refunded_and_in_flight(payment_id: str) -> Decimal:
    """One statement, so one snapshot: what is refunded plus what is Pending."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.refunded_amount + COALESCE((SELECT SUM(r.amount) FROM refunds_refund r"
            " WHERE r.payment_id = p.id AND r.status = 'Pending'), 0) FROM payments_payment p WHERE p.id = %s",
            [payment_id],
        )
        return cursor.fetchone()[0]


def test_fifty_concurrent_refunds_of_thirty_on_a_hundred_accept_exactly_three(captured_payment, principal, no_send_task):
    payment = captured_payment("100.00")
    threads_count = 50
    barrier = threading.Barrier(threads_count)
    done = threading.Event()
    seen: list[Decimal] = []

    def watch():
        try:
            while not done.is_set():
                seen.append(refunded_and_in_flight(payment.id))
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()

    def refund(index):
        barrier.wait(timeout=30)
        try:
            created = refund_create(payment_id=payment.id, amount=Decimal("30.00"), principal=principal)
        except BusinessRuleViolation as exc:
            return exc.code
        # Accepted: sent at once, while the others are still being decided.
        assert refund_claim(created.id)
        return refund_send(refund_id=created.id)

    try:
        outcomes = run_threads(refund, threads_count)
    finally:
        done.set()
        watcher.join(timeout=30)

    assert Counter(outcomes) == {"completed": 3, "REFUND_EXCEEDS_AVAILABLE": 47}
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("90.00"))
    assert Refund.objects.filter(status=RefundStatus.COMPLETED).count() == 3
    assert SimulatorRefund.objects.filter(status="succeeded").count() == 3
    assert seen and max(seen) <= Decimal("100.00")
    assert len(no_send_task) == 3


@pytest.mark.slow  # 19 s on a quiet 2-core machine, over a minute on a busy one: 1,000 sends
def test_two_batch_workers_over_a_thousand_due_refunds_send_each_exactly_once(captured_payment):
    payments = [captured_payment("100.00") for _ in range(10)]
    now = timezone.now()
    ids = [new_refund_id() for _ in range(1000)]
    operations = GatewayOperation.objects.bulk_create(
        GatewayOperation(
            payment=payments[i % 10], kind=OperationKind.REFUND, amount=Decimal("1.00"), idempotency_key=ids[i], next_look_at=now
        )
        for i in range(1000)
    )
    Refund.objects.bulk_create(
        Refund(
            id=ids[i],
            payment=payments[i % 10],
            merchant_id=payments[i % 10].merchant_id,
            operation=operations[i],
            amount=Decimal("1.00"),
            currency="USD",
            status=RefundStatus.PENDING,
            status_changed_at=now,
            gateway="simulator",
        )
        for i in range(1000)
    )
    barrier = threading.Barrier(2)

    def worker(index):
        barrier.wait(timeout=30)
        totals: Counter = Counter()
        while True:
            counts = refunds_process(limit=50)
            if not sum(counts.values()):
                return totals
            totals.update(counts)

    totals = run_threads(worker, 2, timeout=300)

    assert sum(totals, Counter()) == {"completed": 1000}
    assert all(sum(t.values()) > 0 for t in totals), f"one worker did everything: {totals}"
    per_key = GatewayAttempt.objects.filter(operation="refund").values("idempotency_key").annotate(n=Count("id"))
    assert {row["idempotency_key"] for row in per_key} == set(ids)
    assert {row["n"] for row in per_key} == {1}
    assert SimulatorRefund.objects.filter(refund_id__in=ids).count() == 1000
    assert set(Refund.objects.values_list("status", flat=True)) == {RefundStatus.COMPLETED}
    assert set(Payment.objects.values_list("status", "refunded_amount")) == {(PaymentStatus.REFUNDED, Decimal("100.00"))}


@pytest.mark.parametrize("sender", ["task", "batch"])
def test_a_webhook_racing_the_send_applies_the_refund_once(captured_payment, principal, no_send_task, monkeypatch, sender):
    """The gateway refunds, and its webhook arrives while PGI applies the gateway's own answer."""
    payment = captured_payment("100.00")
    rounds = 10
    refunds = [refund_create(payment_id=payment.id, amount=Decimal("5.00"), principal=principal) for _ in range(rounds)]
    # Each round's send takes its own refund: the batch's only due one.
    GatewayOperation.objects.filter(kind=OperationKind.REFUND).update(next_look_at=timezone.now() + timedelta(hours=1))
    connector = get_connector("simulator")
    original = SimulatorConnector.refund
    gateway_done = {r.id: threading.Event() for r in refunds}
    go = {r.id: threading.Event() for r in refunds}

    def refund_then_wait(self, request):
        result = original(self, request)
        gateway_done[request.refund_id].set()
        go[request.refund_id].wait(timeout=30)  # the answer returns as the webhook is posted
        return result

    monkeypatch.setattr(SimulatorConnector, "refund", refund_then_wait)

    def send(refund_id):
        if sender == "task":
            assert refund_claim(refund_id)
            return refund_send(refund_id=refund_id)
        make_refund_due(refund_id)
        return refunds_process(limit=1)

    def webhook(refund_id):
        assert gateway_done[refund_id].wait(timeout=30)
        sim = SimulatorRefund.objects.select_related("charge").get(refund_id=refund_id)
        body = connector.webhook_body(sim.charge, refund=sim)
        [event] = connector.parse_webhook(headers={SIGNATURE_HEADER: connector.signature(body)}, body=body)
        go[refund_id].set()
        return notification_receive(gateway="simulator", event=event).notification.outcome

    for refund in refunds:
        run_threads(lambda index: send(refund.id) if index == 0 else webhook(refund.id), 2)

    payment.refresh_from_db()
    assert (payment.refunded_amount, payment.status) == (Decimal("50.00"), PaymentStatus.PARTIALLY_REFUNDED)
    for refund in refunds:
        [completed] = RefundStatusChange.objects.filter(refund_id=refund.id, to_status=RefundStatus.COMPLETED)
        assert PaymentStatusChange.objects.filter(payment=payment, reason__contains=refund.id).count() == 1
        notification = GatewayNotification.objects.get(refund_id=refund.id)
        # The notification says it applied the refund exactly when the webhook's line is the one.
        assert (notification.outcome == "applied") == (completed.source == "webhook"), (notification.outcome, completed.source)
        assert not Refund.objects.get(pk=refund.id).needs_attention
    assert GatewayAttempt.objects.filter(operation=Operation.REFUND.value).count() == rounds


def test_a_batch_slower_than_its_lease_does_not_send_what_another_run_took_meanwhile(
    captured_payment, principal, no_send_task, monkeypatch, settings
):
    """A slow gateway: the first run's lease on its last refunds runs out before it reaches them,
    and a second run takes them. Each is still sent once: by the run that holds it."""
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "lease_seconds": 1}
    payment = captured_payment("100.00")
    refunds = [refund_create(payment_id=payment.id, amount=Decimal("1.00"), principal=principal) for _ in range(8)]
    original = SimulatorConnector.refund

    def slow(self, request):
        time.sleep(0.3)
        return original(self, request)

    monkeypatch.setattr(SimulatorConnector, "refund", slow)
    first_started = threading.Event()

    def run(index):
        if index == 1:
            assert first_started.wait(timeout=30)
            time.sleep(1.2)  # the first run's lease has run out on what it has not sent yet
        else:
            first_started.set()
        return refunds_process(limit=len(refunds))

    counts = run_threads(run, 2)

    assert sum((Counter(c) for c in counts), Counter()) == {"completed": len(refunds)}
    per_key = Counter(GatewayAttempt.objects.filter(operation="refund").values_list("idempotency_key", flat=True))
    assert per_key == {r.id: 1 for r in refunds}
