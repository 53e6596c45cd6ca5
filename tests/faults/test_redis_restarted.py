"""Redis stopped and started again under a running PGI (gunicorn and a Celery worker, both on a
redis-server of the test's own): while it is away, payments and refunds are still accepted (the
lookups cache, the throttle and the breakers skip it; a refund's wake-up task waits for the batch
job); when it is back, Redis empty (nothing PGI keeps there is lost by losing it), the batch job
sends what was waiting, and nothing is sent twice: one charge and one refund each at the gateway,
one outbox event per status change."""

import time

import pytest
from django.conf import settings

from gateways.models import SimulatorCharge, SimulatorRefund
from payments.models import Payment
from pgi.events.models import OutboxEvent
from pgi.merchants.services import api_key_create
from refunds.models import Refund, RefundStatus

from ..factories import MerchantFactory
from .conftest import wait_until
from .test_celery_worker_killed import succeeded

QUEUE = "pgi-faults-redis"
BODY = {"amount": 50.00, "currency": "USD", "fromAccount": "account123"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.django_db(transaction=True)]


def pay_and_refund(web, key: str) -> tuple[str, str]:
    paid = web.post("/v1/payments", BODY, key=key)
    assert (paid.status_code, paid.json()["status"]) == (201, "Completed"), paid.text
    refund = web.post(f"/v1/payments/{paid.json()['id']}/refunds", {"amount": 20.00, "reason": "returned"}, key=f"{key}-r")
    assert refund.status_code == 202, refund.text
    return paid.json()["id"], refund.json()["id"]


def test_redis_stopped_and_started_payments_go_through_and_nothing_is_sent_twice(processes, redis_server):
    merchant = MerchantFactory(code="merchant456", name="Demo Shop")
    api_key = api_key_create(name="checkout", merchant=merchant)[1]
    on_redis = {"REDIS_URL": redis_server.url, "PGI_CELERY_QUEUE": QUEUE, "PGI_CACHE_PREFIX": "faults-redis"}
    web = processes.web(api_key, **on_redis)
    worker = processes.celery_worker(QUEUE, **on_redis)

    before, before_refund = pay_and_refund(web, "before")
    wait_until(lambda: Refund.objects.get(pk=before_refund).status == RefundStatus.COMPLETED, 30, "the refund sent")

    redis_server.stop()
    started = time.monotonic()
    during, during_refund = pay_and_refund(web, "during")
    assert web.get(f"/v1/payments/{during}").json()["status"] == "Completed"
    assert time.monotonic() - started < 15  # no request waited long on the missing Redis
    replay = web.post("/v1/payments", BODY, key="during")  # idempotency lives in PostgreSQL
    assert (replay.headers["Idempotent-Replayed"], replay.json()["id"]) == ("true", during)
    time.sleep(2)
    assert Refund.objects.get(pk=during_refund).status == RefundStatus.PENDING  # its task was never queued

    redis_server.start()  # the same port, empty
    after, after_refund = pay_and_refund(web, "after")
    runs = succeeded(worker, "refunds_process")
    # What beat does every minute, twice: the batch job sends the refund that waited, once.
    for _ in range(2):
        deadline = time.monotonic() + 60
        while True:  # the worker reconnects to the broker when it notices Redis is back
            processes_send(redis_server.url, "refunds.tasks.refunds_process")
            try:
                wait_until(lambda runs=runs: succeeded(worker, "refunds_process") > runs, 5, "the batch job")
                break
            except AssertionError:
                assert time.monotonic() < deadline, worker.log_text()[-3000:]
        runs = succeeded(worker, "refunds_process")
    wait_until(
        lambda: Refund.objects.filter(status=RefundStatus.COMPLETED).count() == 3, 30, "every refund sent"
    )

    payments = [before, during, after]
    assert SimulatorCharge.objects.filter(idempotency_key__in=payments).count() == 3
    assert sorted(SimulatorRefund.objects.values_list("refund_id", flat=True)) == sorted(
        [before_refund, during_refund, after_refund]
    )
    assert set(Payment.objects.values_list("status", flat=True)) == {"PartiallyRefunded"}
    assert Payment.objects.count() == 3
    # The same story, the same events: the payment made without Redis has no more and no fewer.
    events = {
        payment: sorted(OutboxEvent.objects.filter(key=payment).values_list("topic", "event_type"))
        for payment in payments
    }
    assert events[before] == events[during] == events[after]
    assert events[during].count((settings.PGI_EVENTS["payment_events_topic"], "PAYMENT_CREATED")) == 1


def processes_send(broker_url: str, task: str) -> None:
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        app.send_task(task, queue=QUEUE)
    finally:
        app.close()
