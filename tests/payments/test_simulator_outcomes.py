"""The simulator's documented test values on fromAccount, through POST /v1/payments."""

import time

import pytest

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatus, PaymentStatusChange

from ..api.helpers import PAYMENTS_URL, payment_body, post_json

S = PaymentStatus


def history(payment_id: str) -> list[tuple[str, str, str]]:
    return list(
        PaymentStatusChange.objects.filter(payment_id=payment_id)
        .order_by("created_at", "id")
        .values_list("from_status", "to_status", "source")
    )


@pytest.mark.django_db
def test_ordinary_account_completes_with_its_history_in_order(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account123"))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "Completed"
    charge = SimulatorCharge.objects.get(idempotency_key=body["id"])
    assert body["gatewayReference"] == charge.reference
    assert history(body["id"]) == [
        ("", S.PENDING, "api"),
        (S.PENDING, S.PROCESSING, "system"),
        (S.PROCESSING, S.COMPLETED, "gateway"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("account", "code", "message"),
    [("account0002", "DECLINED", "declined"), ("DE75370400440532010051", "INSUFFICIENT_FUNDS", "insufficient funds")],
)
def test_declining_accounts_create_a_failed_payment(api, account, code, message):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=account))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "Failed"
    assert body["failureCode"] == code
    assert message in body["failureMessage"].lower()
    payment = Payment.objects.get(pk=body["id"])
    assert (payment.status, payment.failure_code) == (S.FAILED, code)
    assert history(body["id"])[-1] == (S.PROCESSING, S.FAILED, "gateway")
    assert PaymentStatusChange.objects.filter(payment=payment).last().failure_code == code


@pytest.mark.django_db
def test_timeout_leaves_the_payment_processing_although_the_gateway_charged(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0408"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "Processing"
    assert body["failureCode"] is None
    charge = SimulatorCharge.objects.get(idempotency_key=body["id"])
    assert charge.status == SimulatorCharge.Status.SUCCEEDED
    changes = list(PaymentStatusChange.objects.filter(payment_id=body["id"]).order_by("created_at", "id"))
    assert [(c.from_status, c.to_status) for c in changes] == [
        ("", S.PENDING),
        (S.PENDING, S.PROCESSING),
        (S.PROCESSING, S.PROCESSING),
    ]
    assert "timed out" in changes[-1].reason
    assert Payment.objects.get(pk=body["id"]).status == S.PROCESSING


@pytest.mark.django_db
def test_asynchronous_account_stays_processing_with_the_gateway_reference(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0202"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "Processing"
    charge = SimulatorCharge.objects.get(idempotency_key=body["id"])
    assert charge.status == SimulatorCharge.Status.PENDING
    assert body["gatewayReference"] == charge.reference
    assert history(body["id"])[-1] == (S.PENDING, S.PROCESSING, "system")


@pytest.fixture
def fresh_queue(transactional_db):
    """Tasks queued by earlier tests of this process name rows that no longer exist: drop them."""
    from pgi.celery import app

    app.control.purge()


@pytest.fixture
def webhooks_to_live_server(settings, live_server):
    settings.PGI_PUBLIC_URL = live_server.url
    settings.PGI_GATEWAYS = {
        **settings.PGI_GATEWAYS,
        "simulator": {**settings.PGI_GATEWAYS["simulator"], "webhook_delay": 0, "latency": 0},
    }
    return live_server


def wait_for_status(payment_id: str, statuses: set[str], timeout: float = 30) -> Payment:
    deadline = time.monotonic() + timeout
    while True:
        payment = Payment.objects.get(pk=payment_id)
        if payment.status in statuses or time.monotonic() > deadline:
            return payment
        time.sleep(0.1)


def test_asynchronous_account_is_completed_by_the_signed_webhook_a_worker_delivers(
    fresh_queue, webhooks_to_live_server, celery_worker, api
):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0202"))
    assert response.status_code == 201, response.content
    # With no webhook delay the worker may win the race with this response; the history below
    # shows the payment was Processing first either way.
    assert response.json()["status"] in ("Processing", "Completed")
    payment_id = response.json()["id"]

    payment = wait_for_status(payment_id, {S.COMPLETED, S.FAILED})

    assert payment.status == S.COMPLETED
    assert payment.gateway_reference == SimulatorCharge.objects.get(idempotency_key=payment_id).reference
    assert history(payment_id) == [
        ("", S.PENDING, "api"),
        (S.PENDING, S.PROCESSING, "system"),
        (S.PROCESSING, S.COMPLETED, "webhook"),
    ]
    assert api.get(f"{PAYMENTS_URL}/{payment_id}/status").json()["status"] == "Completed"
