"""/metrics: protected by its token, Prometheus' text, and figures that move with what PGI does."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from gateways.breaker import breaker_for
from payments.models import GatewayOperation
from pgi.celery import app
from pgi.events.models import OutboxEvent
from refunds.models import Refund, RefundStatus

from ..conftest import client_for
from ..factories import PaymentFactory
from .conftest import METRICS_TOKEN, sample, scrape

BODY = '{"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}'


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


@app.task(name="tests.monitoring.always_fails", ignore_result=True)
def always_fails():
    raise RuntimeError("this task fails on purpose")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"],
    ids=["none", "wrong", "not-bearer", "longer"],
)
def test_metrics_without_the_token_is_401_and_shows_nothing(client, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"pgi_" not in response.content


@pytest.mark.django_db
def test_metrics_is_404_when_no_token_is_configured(client, settings):
    settings.PGI_METRICS_TOKEN = ""

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.django_db
def test_metrics_with_the_token_answers_at_any_host_and_over_plain_http(settings):
    # Prometheus scrapes the pod's address, which DJANGO_ALLOWED_HOSTS does not list.
    settings.PGI_HTTPS = True
    settings.SECURE_SSL_REDIRECT = True

    response = Client(HTTP_HOST="10.1.2.3:8000").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")

    assert response.status_code == 200
    assert b"# TYPE pgi_outbox_unsent gauge" in response.content
    assert b"# TYPE pgi_circuit_breaker_state gauge" in response.content


@pytest.mark.django_db
def test_requests_are_counted_by_route_name_never_by_path(client, merchant, api):
    first, second = PaymentFactory(merchant=merchant), PaymentFactory(merchant=merchant)
    before = scrape(client)

    for payment in (first, second):
        assert api.get(f"/v1/payments/{payment.id}").status_code == 200
    assert api.get("/v1/payments/pay_nothere").status_code == 404
    assert api.get("/v1/no-such-thing/at-all").status_code == 404
    after = scrape(client)

    def moved(**labels):
        return sample(after, "pgi_http_requests_total", **labels) - sample(before, "pgi_http_requests_total", **labels)

    assert moved(route="payment-detail", method="GET", status="200") == 2
    assert moved(route="payment-detail", method="GET", status="404") == 1
    assert moved(route="unmatched", method="GET", status="404") == 1
    assert not [key for key in after if any(first.id in value for _, value in key[1])]
    latency = sample(after, "pgi_http_request_duration_seconds_count", route="payment-detail", method="GET")
    assert latency - sample(before, "pgi_http_request_duration_seconds_count", route="payment-detail", method="GET") == 3


@pytest.mark.django_db(transaction=True)
def test_a_payment_and_a_refund_through_the_api_move_their_outcome_counters(client, celery_worker, merchant, merchant_key):
    api = client_for(merchant_key)
    before = scrape(client)

    paid = api.post("/v1/payments", BODY, content_type="application/json")
    declined = api.post("/v1/payments", BODY.replace("account123", "account0002"), content_type="application/json")
    assert (paid.status_code, paid.json()["status"]) == (201, "Completed")
    assert declined.json()["status"] == "Failed"
    refund = api.post(f"/v1/payments/{paid.json()['id']}/refunds", '{"amount": 20.00}', content_type="application/json")
    assert refund.status_code == 202
    wait_until(
        lambda: Refund.objects.get(pk=refund.json()["id"]).status == RefundStatus.COMPLETED,
        timeout=30,
        what="the worker sent the refund",
    )
    after = scrape(client)

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("pgi_payment_outcomes_total", gateway="simulator", status="Completed") == 1
    assert moved("pgi_payment_outcomes_total", gateway="simulator", status="Failed") == 1
    assert moved("pgi_refund_outcomes_total", gateway="simulator", status="Completed") == 1
    assert moved("pgi_refund_outcomes_total", gateway="simulator", status="Failed") == 0
    assert moved("pgi_http_requests_total", route="payments", method="POST", status="201") == 2  # a decline is 201 too
    assert moved("pgi_http_requests_total", route="payment-refunds", method="POST", status="202") == 1


@pytest.mark.django_db(transaction=True)
def test_a_failing_celery_task_on_a_real_worker_is_counted_by_its_name(client, celery_worker):
    name = "tests.monitoring.always_fails"
    before = sample(scrape(client), "pgi_celery_task_failures_total", task=name)

    always_fails.delay()
    wait_until(
        lambda: sample(scrape(client), "pgi_celery_task_failures_total", task=name) == before + 1,
        timeout=30,
        what="the failure counted",
    )


@pytest.mark.django_db
def test_backlogs_outbox_and_breakers_are_read_from_the_tables_and_the_cache(client, merchant, settings):
    PaymentFactory(merchant=merchant, processing=True)  # sent, first look ahead
    late = PaymentFactory(merchant=merchant, due=True)
    GatewayOperation.objects.filter(payment=late).update(next_look_at=timezone.now() - timedelta(minutes=5))
    OutboxEvent.objects.create(topic="payment-events", key="pay_x", event_type="PAYMENT_CREATED", payload={})
    breaker = breaker_for("simulator")
    for _ in range(settings.PGI_CIRCUIT_BREAKER["failure_threshold"]):
        breaker.record_failure()

    samples = scrape(client)

    assert sample(samples, "pgi_recovery_backlog", kind="authorize") >= 2
    assert sample(samples, "pgi_recovery_backlog", kind="capture") == 0
    assert sample(samples, "pgi_recovery_due", kind="authorize") >= 1
    assert sample(samples, "pgi_recovery_oldest_due_seconds") >= 299
    assert sample(samples, "pgi_outbox_unsent") >= 1
    assert sample(samples, "pgi_outbox_oldest_unsent_seconds") >= 0
    assert sample(samples, "pgi_circuit_breaker_state", gateway="simulator", state="open") == 1
    assert sample(samples, "pgi_circuit_breaker_state", gateway="simulator", state="closed") == 0
    assert sample(samples, "pgi_metrics_source_up", source="database") == 1
    assert sample(samples, "pgi_metrics_source_up", source="cache") == 1
    for name in ("pgi_refund_backlog", "pgi_refund_due", "pgi_reconciliation_open_exceptions"):
        assert any(key[0] == name for key in samples), name


@pytest.mark.django_db
def test_a_cache_that_is_down_is_reported_and_the_database_figures_still_come(client, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 0.2}}
    }

    samples = scrape(client)

    assert sample(samples, "pgi_metrics_source_up", source="cache") == 0
    assert sample(samples, "pgi_metrics_source_up", source="database") == 1
    assert any(key[0] == "pgi_outbox_unsent" for key in samples)
