"""Payments through the Stripe and Adyen connectors, end to end: POST /v1/payments routed to the
gateway, capture and cancel, and the gateway's signed webhooks, with each SDK pointed at a local
fake that answers in the gateway's documented shapes. PostgreSQL and Redis are real."""

from decimal import Decimal

import pytest

from gateways.models import GatewayNotification, GatewayRoute
from payments.models import GatewayAttempt, Payment

from ..api.helpers import PAYMENTS_URL, loads, payment_body, post_json
from ..conftest import simulator_options
from ..gateways.fakes.adyen_server import notification_body, notification_item
from ..gateways.fakes.stripe_server import closed_port, sign_webhook, stripe_event
from ..factories import make_due
from .conftest import stripe_options

pytestmark = pytest.mark.django_db


def stripe_webhook(client, body: bytes, signature: str | None = None):
    return client.post(
        "/v1/gateways/stripe/webhooks",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature or sign_webhook(body)},
    )


def adyen_webhook(client, body: bytes):
    return client.post("/v1/gateways/adyen/webhooks", data=body, content_type="application/json")


# --- Stripe ---------------------------------------------------------------------------------------


def test_stripe_takes_a_payment_with_our_payment_id_as_idempotency_key(api, stripe_gateway):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa"))

    body = loads(response.content)
    assert (body["status"], body["gateway"], body["capturedAmount"]) == ("Completed", "stripe", Decimal("50.00"))
    intent = stripe_gateway.payment_intents[body["gatewayReference"]]
    assert intent["amount"] == 5000
    assert intent["metadata"]["pgi_payment_id"] == body["id"]
    [create] = stripe_gateway.requests_to("POST", "/v1/payment_intents")
    assert create.headers["idempotency-key"] == body["id"]
    assert GatewayAttempt.objects.get(payment_id=body["id"]).outcome == "succeeded"


def test_stripe_decline_fails_the_payment_with_a_normalized_code(api, stripe_gateway):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_chargeDeclinedInsufficientFunds"))

    body = response.json()
    assert (body["status"], body["failureCode"]) == ("Failed", "INSUFFICIENT_FUNDS")


def test_stripe_authorize_then_partial_capture(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    assert created["status"] == "Authorized"

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {"amount": Decimal("20.00")})

    assert response.status_code == 200, response.content
    assert loads(response.content)["capturedAmount"] == Decimal("20.00")
    intent = stripe_gateway.payment_intents[created["gatewayReference"]]
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 2000)
    [capture] = stripe_gateway.requests_to("POST", f"/v1/payment_intents/{created['gatewayReference']}/capture")
    assert capture.headers["idempotency-key"] == f"{created['id']}-capture"


def test_stripe_cancel_releases_the_authorization(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/cancel", {})

    assert (response.status_code, response.json()["status"]) == (200, "Cancelled")
    assert stripe_gateway.payment_intents[created["gatewayReference"]]["status"] == "canceled"


def test_stripe_unreachable_fails_over_to_the_simulator(api, settings, merchant):
    with closed_port() as dead_url:
        settings.PGI_GATEWAYS = {"simulator": simulator_options(), "stripe": stripe_options(dead_url)}
        GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="stripe", priority=1)
        GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=2)

        body = post_json(api, PAYMENTS_URL, payment_body()).json()

    assert (body["status"], body["gateway"]) == ("Completed", "simulator")
    assert list(GatewayAttempt.objects.filter(payment_id=body["id"]).values_list("gateway", "outcome")) == [
        ("stripe", "unavailable"),
        ("simulator", "succeeded"),
    ]


def test_stripe_500_after_charging_is_not_failed_over_and_recovery_completes_it(api, stripe_gateway, merchant):

    from payments.services import payments_recover

    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=2)
    stripe_gateway.fail_next(500, after_processing=True)

    body = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa")).json()

    assert (body["status"], body["gateway"]) == ("Processing", "stripe")
    assert len(stripe_gateway.payment_intents) == 1
    make_due(body["id"])
    payments_recover()
    payment = Payment.objects.get(pk=body["id"])
    assert payment.status == "Completed"
    assert len(stripe_gateway.payment_intents) == 1


def test_stripe_webhook_completes_a_processing_payment_once(api, client, stripe_gateway):
    stripe_gateway.fail_next(500, after_processing=True)
    body = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa")).json()
    [intent] = stripe_gateway.payment_intents.values()
    event = stripe_event("payment_intent.succeeded", intent)

    first, again = stripe_webhook(client, event), stripe_webhook(client, event)

    assert first.json() == {"received": True, "matched": True, "duplicate": False}
    assert again.json() == {"received": True, "matched": True, "duplicate": True}
    payment = Payment.objects.get(pk=body["id"])
    assert (payment.status, payment.gateway_reference) == ("Completed", intent["id"])


def test_stripe_webhook_with_a_bad_signature_is_refused(api, client, stripe_gateway):
    body = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa")).json()
    intent = stripe_gateway.payment_intents[body["gatewayReference"]]
    event = stripe_event("payment_intent.payment_failed", intent)

    response = stripe_webhook(client, event, signature=sign_webhook(event, secret="whsec_wrong"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert not GatewayNotification.objects.exists()


# --- Adyen ----------------------------------------------------------------------------------------


def test_adyen_capture_is_confirmed_by_its_notification(api, client, adyen_gateway):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    assert (created["status"], created["gateway"]) == ("Authorized", "adyen")
    [request] = adyen_gateway.requests_to("/payments")
    assert request.headers["idempotency-key"] == created["id"]

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {"amount": Decimal("40.00")})

    # Adyen answers "received": the capture is in flight until its notification.
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["pendingOperation"]) == ("Authorized", "capture")
    second = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})
    assert (second.status_code, second.json()["error"]["code"]) == (409, "OPERATION_IN_PROGRESS")
    assert Payment.objects.get(pk=created["id"]).pending_amount == Decimal("40.00")
    [capture] = adyen_gateway.requests_to("/captures")
    assert capture.headers["idempotency-key"] == f"{created['id']}-capture"

    notice = notification_body(
        [
            notification_item(
                event_code="CAPTURE",
                psp_reference="CAPTUREPSP0000001",
                original_reference=created["gatewayReference"],
                merchant_reference=created["id"],
                value=4000,
                currency="EUR",
            )
        ]
    )
    ack = adyen_webhook(client, notice)

    assert (ack.status_code, ack.content, ack.headers["Content-Type"]) == (200, b"[accepted]", "text/plain")
    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.captured_amount, payment.pending_operation) == (
        "Completed",
        Decimal("40.0000"),
        "",
    )


def test_adyen_out_of_order_authorisation_after_capture_changes_nothing(api, client, adyen_gateway):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})
    capture_notice = notification_item(
        event_code="CAPTURE",
        psp_reference="CAPTUREPSP0000002",
        original_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
    )
    late_authorisation = notification_item(
        event_code="AUTHORISATION",
        psp_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
    )

    adyen_webhook(client, notification_body([capture_notice]))
    adyen_webhook(client, notification_body([late_authorisation]))

    assert Payment.objects.get(pk=created["id"]).status == "Completed"
    outcomes = dict(GatewayNotification.objects.values_list("event_type", "outcome"))
    assert outcomes == {"CAPTURE": "applied", "AUTHORISATION": "ignored"}


def test_adyen_notification_with_a_bad_hmac_is_refused_and_changes_nothing(api, client, adyen_gateway):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    item = notification_item(
        event_code="CANCELLATION",
        psp_reference="CANCELPSP00000001",
        original_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
    )

    response = adyen_webhook(client, notification_body([item], hmac_key="00" * 32))

    assert response.status_code == 400
    assert Payment.objects.get(pk=created["id"]).status == "Authorized"
    assert not GatewayNotification.objects.exists()
