"""Authorize and capture: `capture: false`, then POST /v1/payments/{id}/capture or /cancel, and the
expiry of authorizations nobody captured. Against PostgreSQL, Redis and the simulator."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from gateways.models import SimulatorCharge
from payments.models import GatewayAttempt, Payment, PaymentStatusChange
from payments.services import authorizations_expire

from ..api.helpers import PAYMENTS_URL, assert_error, loads, payment_body, post_json
from ..conftest import client_for, simulator_outage_set

pytestmark = pytest.mark.django_db


def authorized(api, **overrides) -> dict:
    response = post_json(api, PAYMENTS_URL, payment_body(capture=False, **overrides))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "Authorized", body
    return body


def capture(api, payment_id: str, body=None, **headers):
    return post_json(api, f"{PAYMENTS_URL}/{payment_id}/capture", {} if body is None else body, **headers)


def cancel(api, payment_id: str, **headers):
    return post_json(api, f"{PAYMENTS_URL}/{payment_id}/cancel", {}, **headers)


def charge(payment_id: str) -> SimulatorCharge:
    return SimulatorCharge.objects.get(gateway="simulator", idempotency_key=payment_id)


def test_capture_false_leaves_the_payment_authorized_with_an_expiry(api, settings):
    settings.PGI_AUTHORIZATION_TTL_HOURS = 24
    body = authorized(api)

    assert body["capture"] is False
    assert body["capturedAmount"] is None
    assert body["pendingOperation"] is None
    expires = Payment.objects.get(pk=body["id"]).authorization_expires_at
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    assert charge(body["id"]).status == "authorized"


def test_full_capture_completes_the_payment(api):
    payment = authorized(api)

    response = capture(api, payment["id"])

    assert response.status_code == 200, response.content
    body = loads(response.content)
    assert (body["status"], body["capturedAmount"]) == ("Completed", Decimal("50.00"))
    assert str(body["capturedAmount"]) == "50.00"
    assert GatewayAttempt.objects.filter(payment_id=payment["id"], operation="capture").get().idempotency_key == (
        f"{payment['id']}-capture"
    )
    assert charge(payment["id"]).captured_amount == Decimal("50.00")


def test_partial_capture_takes_only_that_amount(api):
    payment = authorized(api)

    response = capture(api, payment["id"], {"amount": Decimal("30.00")})

    assert response.status_code == 200, response.content
    body = loads(response.content)
    assert (body["status"], body["amount"], body["capturedAmount"]) == ("Completed", Decimal("50.00"), Decimal("30.00"))
    assert charge(payment["id"]).captured_amount == Decimal("30.00")


def test_capture_of_more_than_authorized_is_refused_and_changes_nothing(api):
    payment = authorized(api)

    assert_error(capture(api, payment["id"], {"amount": Decimal("50.01")}), 422, "CAPTURE_EXCEEDS_AUTHORIZATION", "amount")

    assert Payment.objects.get(pk=payment["id"]).status == "Authorized"
    assert not GatewayAttempt.objects.filter(payment_id=payment["id"], operation="capture").exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"amount": Decimal("10.001")}, "amount"),
        ({"amount": Decimal("0")}, "amount"),
        ({"amount": "10.00"}, "amount"),
        ({"amount": Decimal("10"), "currency": "USD"}, "currency"),
    ],
)
def test_bad_capture_input_is_a_validation_error(api, body, field):
    payment = authorized(api)

    assert_error(capture(api, payment["id"], body), 400, "VALIDATION_ERROR", field)

    assert Payment.objects.get(pk=payment["id"]).status == "Authorized"


def test_second_capture_is_a_conflict(api):
    payment = authorized(api)
    assert capture(api, payment["id"]).status_code == 200

    assert_error(capture(api, payment["id"]), 409, "PAYMENT_NOT_CAPTURABLE")


def test_a_payment_captured_at_once_cannot_be_captured_or_cancelled(api):
    response = post_json(api, PAYMENTS_URL, payment_body())
    payment_id = response.json()["id"]

    assert_error(capture(api, payment_id), 409, "PAYMENT_NOT_CAPTURABLE")
    assert_error(cancel(api, payment_id), 409, "PAYMENT_NOT_CANCELLABLE")


def test_cancel_releases_the_authorization(api):
    payment = authorized(api)

    response = cancel(api, payment["id"])

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "Cancelled"
    assert charge(payment["id"]).status == "cancelled"
    assert_error(cancel(api, payment["id"]), 409, "PAYMENT_NOT_CANCELLABLE")
    assert_error(capture(api, payment["id"]), 409, "PAYMENT_NOT_CAPTURABLE")


def test_another_merchants_payment_is_not_found(api, other_merchant):
    payment = authorized(api)
    from pgi.merchants.services import api_key_create

    _, other_key = api_key_create(name="other", merchant=other_merchant)

    assert_error(capture(client_for(other_key), payment["id"]), 404, "PAYMENT_NOT_FOUND")
    assert Payment.objects.get(pk=payment["id"]).status == "Authorized"


def test_capture_while_the_gateway_is_down_is_503_and_can_be_retried(api):
    payment = authorized(api)
    simulator_outage_set("simulator", True)

    assert_error(capture(api, payment["id"]), 503, "GATEWAY_UNAVAILABLE")

    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.pending_operation) == ("Authorized", "")
    simulator_outage_set("simulator", False)
    assert capture(api, payment["id"]).status_code == 200


def test_capture_replayed_with_the_same_idempotency_key_returns_the_first_answer(api):
    payment = authorized(api)

    first = capture(api, payment["id"], **{"Idempotency-Key": "cap-1"})
    second = capture(api, payment["id"], **{"Idempotency-Key": "cap-1"})

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json() == second.json()
    assert GatewayAttempt.objects.filter(payment_id=payment["id"], operation="capture").count() == 1


def test_capture_of_an_expired_authorization_is_refused(api):
    payment = authorized(api)
    Payment.objects.filter(pk=payment["id"]).update(authorization_expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(capture(api, payment["id"]), 409, "AUTHORIZATION_EXPIRED")


def test_expiry_job_cancels_uncaptured_authorizations_at_the_gateway(api):
    expired, fresh = authorized(api), authorized(api)
    Payment.objects.filter(pk=expired["id"]).update(authorization_expires_at=timezone.now() - timedelta(minutes=1))

    assert authorizations_expire() == 1

    cancelled = Payment.objects.get(pk=expired["id"])
    assert (cancelled.status, cancelled.failure_code) == ("Cancelled", "AUTHORIZATION_EXPIRED")
    assert charge(expired["id"]).status == "cancelled"
    assert Payment.objects.get(pk=fresh["id"]).status == "Authorized"
    last = PaymentStatusChange.objects.filter(payment_id=expired["id"]).last()
    assert (last.to_status, last.source) == ("Cancelled", "gateway")
    assert "expired" in last.reason
    assert authorizations_expire() == 0


def test_expiry_job_leaves_the_payment_when_the_gateway_is_down_and_tries_again(api):
    payment = authorized(api)
    Payment.objects.filter(pk=payment["id"]).update(authorization_expires_at=timezone.now() - timedelta(minutes=1))
    simulator_outage_set("simulator", True)

    assert authorizations_expire() == 0
    assert Payment.objects.get(pk=payment["id"]).status == "Authorized"

    simulator_outage_set("simulator", False)
    assert authorizations_expire() == 1
    assert Payment.objects.get(pk=payment["id"]).status == "Cancelled"


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_capture_once(merchant_key):
    full_key = merchant_key
    payment = authorized(client_for(full_key))
    barrier = threading.Barrier(4)
    statuses = []

    def capture_once():
        try:
            barrier.wait()
            statuses.append(capture(client_for(full_key), payment["id"]).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=capture_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200, 409, 409, 409]
    assert GatewayAttempt.objects.filter(payment_id=payment["id"], operation="capture").count() == 1
    assert Payment.objects.get(pk=payment["id"]).captured_amount == Decimal("50.00")


def test_a_capture_the_gateway_refuses_is_422_and_the_payment_stays_authorized(api):
    payment = authorized(api)
    # The gateway released the hold on its own (say, the issuer's), so it refuses the capture.
    SimulatorCharge.objects.filter(idempotency_key=payment["id"]).update(status="cancelled")

    error = assert_error(capture(api, payment["id"]), 422, "CAPTURE_DECLINED", "gateway")

    assert "ALREADY_PROCESSED" in str(error["details"])
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.pending_operation, stored.captured_amount) == ("Authorized", "", None)
    assert PaymentStatusChange.objects.filter(payment=stored, reason__startswith="capture refused").exists()


def test_capture_while_the_breaker_is_open_is_503_without_calling_the_gateway(api, settings):
    from gateways.breaker import breaker_for

    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 60}
    payment = authorized(api)
    breaker_for("simulator").record_failure()

    assert_error(capture(api, payment["id"]), 503, "GATEWAY_UNAVAILABLE")

    assert list(GatewayAttempt.objects.filter(payment_id=payment["id"], operation="capture").values_list("outcome", flat=True)) == [
        "circuit_open"
    ]
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.pending_operation) == ("Authorized", "")
    assert not PaymentStatusChange.objects.filter(payment=stored, reason__startswith="capture of").exists()
