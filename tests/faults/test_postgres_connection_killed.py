"""A PostgreSQL connection of the web process ended (pg_terminate_backend) while a POST
/v1/payments is in flight: inside its transaction, the request answers a clean 503 in the error
format, nothing of it is committed and its Idempotency-Key is free again; while it waits on the
gateway (its connection idle in the pool, or kept by the thread), the request reconnects and
completes. Either way the next request on that worker succeeds and every payment has its rows."""

import threading

import psycopg
import pytest
import requests
from django.conf import settings

from gateways.models import SimulatorCharge
from payments.models import GatewayAttempt, Payment
from pgi.api.models import IdempotencyRecord
from pgi.events.models import OutboxEvent
from pgi.merchants.services import api_key_create

from ..e2e.test_idempotency_crash import database_url_of_this_test, waiting_on_a_lock
from ..factories import MerchantFactory
from .conftest import terminate_backends, wait_until

BODY = {"amount": 50.00, "currency": "USD", "fromAccount": "account123"}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api_key(transactional_db):
    merchant = MerchantFactory(code="merchant456", name="Demo Shop")
    return api_key_create(name="checkout", merchant=merchant)[1]


def post_in_background(web, key: str) -> dict:
    answer = {}

    def send():
        try:
            answer["response"] = web.post("/v1/payments", BODY, key=key)
        except requests.RequestException as exc:
            answer["error"] = exc

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    answer["thread"] = thread
    return answer


def assert_whole(payment: Payment) -> None:
    """A payment with every row its status needs: one charge at the gateway and its attempt, a
    status change per move and an event for each in the outbox."""
    assert SimulatorCharge.objects.filter(idempotency_key=payment.id).count() == 1
    assert GatewayAttempt.objects.filter(payment_id=payment.id, outcome="succeeded").count() == 1
    changes = payment.status_changes.count()
    assert changes >= 1
    topic = settings.PGI_EVENTS["payment_events_topic"]
    assert OutboxEvent.objects.filter(topic=topic, key=payment.id).count() == changes


def test_connection_killed_inside_the_payments_transaction_is_a_clean_503_and_nothing_half_written(
    processes, api_key
):
    web = processes.web(api_key)
    worker = web.worker()
    with psycopg.connect(database_url_of_this_test(), autocommit=False) as blocker:
        # Holds back any INSERT into payments: the request stops inside the transaction that creates
        # the payment (after it claimed its Idempotency-Key), with its connection in use.
        blocker.execute(f"LOCK TABLE {Payment._meta.db_table} IN SHARE MODE")
        answer = post_in_background(web, "order-1")
        wait_until(waiting_on_a_lock, 30, "the request to wait inside its transaction")

        assert terminate_backends("AND wait_event_type = 'Lock'") == 1
        answer["thread"].join(30)
        blocker.rollback()

    response = answer["response"]
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert int(response.headers["Retry-After"]) >= 1
    assert "Idempotent-Replayed" not in response.headers
    assert not Payment.objects.exists()
    assert not SimulatorCharge.objects.exists()
    assert not IdempotencyRecord.objects.filter(key="order-1").exists()  # released, not stuck

    retry = web.post("/v1/payments", BODY, key="order-1")

    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers  # it ran, this time to the end
    assert web.worker() == worker  # the same worker, which did not have to restart
    payment = Payment.objects.get()
    assert (payment.id, payment.status) == (retry.json()["id"], "Completed")
    assert_whole(payment)
    assert web.post("/v1/payments", BODY, key="order-1").headers["Idempotent-Replayed"] == "true"
    assert web.post("/v1/payments", BODY).status_code == 201


@pytest.mark.parametrize("pool_size", ["8", "0"], ids=["pool", "persistent-connection"])
def test_connection_killed_while_the_request_waits_on_the_gateway_is_replaced(processes, api_key, pool_size):
    web = processes.web(api_key, PGI_SIMULATOR_LATENCY="2", PGI_DB_POOL_SIZE=pool_size, DATABASE_CONN_MAX_AGE="600")
    worker = web.worker()
    web.get("/v1/payments?limit=1")  # every connection of the worker opened and kept
    answer = post_in_background(web, "order-2")
    wait_until(lambda: Payment.objects.filter(status="Processing").exists(), 30, "the payment sent to the gateway")

    assert terminate_backends() >= 1  # every connection the web process holds, pooled or kept
    assert answer["thread"].is_alive()  # still waiting on the gateway
    answer["thread"].join(30)

    response = answer["response"]
    assert response.status_code == 201, response.text
    payment = Payment.objects.get()
    assert (payment.id, payment.status) == (response.json()["id"], "Completed")
    assert_whole(payment)
    replay = web.post("/v1/payments", BODY, key="order-2")
    assert (replay.headers["Idempotent-Replayed"], replay.json()["id"]) == ("true", payment.id)
    assert web.post("/v1/payments", BODY).status_code == 201
    assert web.worker() == worker
