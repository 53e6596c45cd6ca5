"""A Celery worker killed (SIGKILL) in the middle of the settlement job or of the refund batch job:
what it was doing is either committed whole or not at all, and after a worker starts again (the
task message redelivered once the broker's visibility timeout passes, and the next beat run) every
batch and every refund exists once: the totals add up, and the gateway has each refund once.

The broker is a redis-server of the test's own, with a visibility timeout of seconds: on the
shared Redis that would hand other tests' running tasks to this test's worker."""

import datetime as dt
import signal
import time
from decimal import Decimal

import psycopg
import pytest
from celery import Celery
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from gateways.models import SimulatorRefund
from payments.models import GatewayOperation, OperationStatus, Payment, PaymentStatus
from payments.services import payment_process, payment_validate
from payments.services.core import payment_lock
from refunds.models import Refund, RefundStatus
from refunds.services import refund_add_locked
from settlements.models import SettlementBatch, SettlementLine, SettlementRun

from ..e2e.test_idempotency_crash import database_url_of_this_test, waiting_on_a_lock
from ..factories import MerchantFactory, captured_payment, completed_refund
from .conftest import wait_until

VISIBILITY_SECONDS = 2
LEASE_SECONDS = 4
QUEUE = "pgi-faults-celery"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start_worker(processes, redis_server):
    def start(**env: str):
        return processes.celery_worker(
            QUEUE,
            REDIS_URL=redis_server.url,
            PGI_CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_SECONDS),
            PGI_RECOVERY_LEASE_SECONDS=str(LEASE_SECONDS),
            # A refund whose call was cut off is looked at again a second later, not a minute.
            PGI_RECOVERY_GRACE_SECONDS="1",
            PGI_RECOVERY_BASE_SECONDS="1",
            PGI_REFUND_RUN_SECONDS="5",
            **env,
        )

    return start


@pytest.fixture
def send_task(redis_server):
    app = Celery(broker=redis_server.url)

    def send(name: str) -> None:
        app.send_task(name, queue=QUEUE)

    yield send
    app.close()


def other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_worker_killed_mid_settlement_leaves_no_batch_then_settles_each_pair_once(
    start_worker, send_task, merchant
):
    yesterday = timezone.now() - dt.timedelta(days=1, hours=1)
    other = MerchantFactory(code="merchant789", name="Other Shop")
    payments = [
        captured_payment(merchant=owner, amount=amount, currency=currency, captured_at=yesterday)
        for owner, amount, currency in [
            (merchant, "100.00", "USD"), (merchant, "40.00", "USD"), (merchant, "25.00", "EUR"),
            (other, "70.00", "USD"), (other, "12.50", "USD"),
        ]
    ]
    completed_refund(payment=payments[0], amount="30.00", completed_at=yesterday)
    worker = start_worker()

    with psycopg.connect(database_url_of_this_test(), autocommit=False) as blocker:
        # Lets reads through and holds back the run's last write (the run's record), so the worker
        # is killed with every batch and line of the run written but not committed.
        blocker.execute(f"LOCK TABLE {SettlementRun._meta.db_table} IN EXCLUSIVE MODE")
        send_task("settlements.tasks.settlements_settle")
        wait_until(waiting_on_a_lock, 60, "the settlement run to wait before its commit")

        worker.stop(signal.SIGKILL)
        blocker.rollback()
    wait_until(lambda: other_backends() == 0, 30, "the killed worker's transaction to end")

    assert not SettlementBatch.objects.exists()  # nothing half-done
    assert not SettlementLine.objects.exists()
    assert not SettlementRun.objects.exists()

    # A worker restarted once the visibility timeout has passed takes the unacknowledged message at
    # its start: kombu looks for such messages when it starts, then only every tenth look (every
    # 100 s by default), so one started sooner would wait for that.
    time.sleep(VISIBILITY_SECONDS + 0.5)
    again = start_worker()
    wait_until(SettlementRun.objects.exists, 60, "the settlement run, redelivered")
    send_task("settlements.tasks.settlements_settle")  # beat firing again finds it done
    wait_until(lambda: succeeded(again, "settlements_settle") == 2, 30, "the second run")

    batches = {(b.merchant_id, b.currency): b for b in SettlementBatch.objects.all()}
    assert set(batches) == {(merchant.id, "USD"), (merchant.id, "EUR"), (other.id, "USD")}
    assert batches[merchant.id, "USD"].gross_amount == Decimal("140.00")
    assert batches[merchant.id, "USD"].refund_amount == Decimal("30.00")
    assert batches[merchant.id, "EUR"].gross_amount == Decimal("25.00")
    assert batches[other.id, "USD"].gross_amount == Decimal("82.50")
    assert SettlementLine.objects.filter(refund__isnull=False).count() == 1
    for payment in payments:
        assert SettlementLine.objects.filter(payment=payment, refund__isnull=True).count() == 1
    assert SettlementRun.objects.get().batches_created == 3


def succeeded(worker, task: str) -> int:
    """How many runs of `task` the worker's log reports as finished."""
    return sum(1 for line in worker.log_text().splitlines() if f".{task}[" in line and " succeeded in " in line)


def completed_payment(principal, amount: str) -> Payment:
    draft = payment_validate(
        principal=principal, amount=Decimal(amount), currency="USD", from_account="account123", to_merchant=None
    )
    payment = payment_process(draft=draft, principal=principal)
    assert payment.status == PaymentStatus.COMPLETED
    return payment


def test_worker_killed_mid_refund_batch_then_each_refund_reaches_the_gateway_once(start_worker, send_task, principal):
    payment = completed_payment(principal, "100.00")
    amounts = [Decimal("10.00"), Decimal("11.00"), Decimal("12.00"), Decimal("13.00"), Decimal("14.00")]
    with transaction.atomic():  # as a bulk file leaves them: Pending, due, queued to no task
        locked = payment_lock(payment.id)
        refunds = [refund_add_locked(payment=locked, amount=amount, reason="bulk") for amount in amounts]
    worker = start_worker(PGI_SIMULATOR_LATENCY="1")

    send_task("refunds.tasks.refunds_process")
    wait_until(lambda: Refund.objects.filter(status=RefundStatus.COMPLETED).count() >= 2, 60, "two refunds sent")
    worker.stop(signal.SIGKILL)  # in the middle of the next refund's call to the gateway

    sent = Refund.objects.filter(status=RefundStatus.COMPLETED).count()
    assert 2 <= sent < len(refunds)
    assert SimulatorRefund.objects.count() in (sent, sent + 1)  # the one in flight may have arrived

    # The refund cut off mid-call stays held for as long as that call could have taken (the
    # gateway's max_call_seconds + 30 s), so no second call can race it; the test moves past it.
    held = GatewayOperation.objects.filter(status=OperationStatus.PENDING, lease_expires_at__gt=timezone.now())
    assert held.exists()
    held.update(lease_expires_at=timezone.now())

    time.sleep(VISIBILITY_SECONDS + 0.5)  # as above: the restarted worker takes the message at its start
    again = start_worker()  # the batch message redelivered
    wait_until(lambda: succeeded(again, "refunds_process") >= 1, 60, "the redelivered batch")
    runs = 1
    while Refund.objects.filter(status=RefundStatus.COMPLETED).count() < len(refunds):
        assert runs < 30, list(Refund.objects.values_list("status", "operation__status", "operation__lease_expires_at"))
        time.sleep(1)
        send_task("refunds.tasks.refunds_process")  # as beat does every minute
        runs += 1
        wait_until(lambda runs=runs: succeeded(again, "refunds_process") >= runs, 30, "the batch run")
    send_task("refunds.tasks.refunds_process")  # one more, with nothing left to send
    wait_until(lambda: succeeded(again, "refunds_process") > runs, 30, "the last batch run")

    assert SimulatorRefund.objects.count() == len(refunds)  # each refund once at the gateway
    assert sorted(SimulatorRefund.objects.values_list("refund_id", flat=True)) == sorted(
        r.id for r in refunds
    )
    payment.refresh_from_db()
    assert payment.refunded_amount == sum(amounts)
    assert Refund.objects.aggregate(total=Sum("amount"))["total"] == sum(amounts)
    assert not Payment.objects.filter(refunded_amount__gt=Decimal("100.00")).exists()


def fresh(refunds: list[Refund]) -> list[Refund]:
    return list(Refund.objects.filter(pk__in=[r.pk for r in refunds]).select_related("operation"))
