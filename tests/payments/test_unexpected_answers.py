"""Gateway answers of a shape the connector does not know leave the outcome unknown (the payment stays
Processing, the capture or cancel stays in flight, an attempt is recorded as a timeout) and recovery
asks later; never a 500. A refusal of a re-sent capture or cancel is checked against the gateway's
status before the payment moves."""

from decimal import Decimal

import pytest

from gateways.models import GatewayRoute
from payments.models import GatewayAttempt, Payment
from payments.services import payments_recover

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..conftest import simulator_options
from ..factories import make_due

pytestmark = pytest.mark.django_db


def last_attempt(payment_id: str, operation: str) -> GatewayAttempt:
    return GatewayAttempt.objects.filter(payment_id=payment_id, operation=operation).latest("id")


def without(*names):
    return lambda answer: {key: value for key, value in answer.items() if key not in names}


def with_fields(**fields):
    return lambda answer: {**answer, **fields}


# --- Stripe -------------------------------------------------------------------------------------


def test_stripe_charge_answered_without_amount_received_stays_processing_and_recovery_completes_it(
    api, stripe_gateway, merchant
):
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=2)
    stripe_gateway.reshape_next(without("amount_received"))

    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["gateway"]) == ("Processing", "stripe")  # never failed over: it was charged
    assert last_attempt(body["id"], "authorize").outcome == GatewayAttempt.Outcome.TIMEOUT
    assert len(stripe_gateway.payment_intents) == 1
    make_due(body["id"])
    payments_recover()
    payment = Payment.objects.get(pk=body["id"])
    assert (payment.status, payment.captured_amount) == ("Completed", Decimal("50.00"))
    assert payment.gateway_reference in stripe_gateway.payment_intents


@pytest.mark.parametrize(
    "reshape",
    [without("status"), with_fields(id=["pi_list"]), with_fields(amount_received="lots"), lambda answer: []],
    ids=["no-status", "list-id", "text-amount", "list-body"],
)
def test_stripe_capture_answered_in_an_unknown_shape_stays_in_flight(api, stripe_gateway, reshape):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.reshape_next(reshape)

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})

    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["pendingOperation"]) == ("Authorized", "capture")
    assert last_attempt(created["id"], "capture").outcome == GatewayAttempt.Outcome.TIMEOUT
    make_due(created["id"])
    payments_recover()
    assert Payment.objects.get(pk=created["id"]).status == "Completed"


def test_stripe_cancel_answered_in_an_unknown_shape_stays_in_flight(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.reshape_next(without("currency"))

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/cancel", {})

    assert (response.status_code, response.json()["pendingOperation"]) == (202, "void")
    make_due(created["id"])
    payments_recover()
    assert Payment.objects.get(pk=created["id"]).status == "Cancelled"


def test_stripe_status_answered_in_an_unknown_shape_keeps_the_payment_waiting(api, stripe_gateway):
    stripe_gateway.fail_next(500, after_processing=True)
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa")).json()
    assert created["status"] == "Processing"
    # Without a reference yet, recovery finds the intent by search: each result lacks its status.
    stripe_gateway.reshape_next(lambda answer: {**answer, "data": [without("status")(i) for i in answer["data"]]})
    make_due(created["id"])

    assert payments_recover() == {"settled": 0, "waiting": 1, "flagged": 0}

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.recovery_attempts) == ("Processing", 1)
    assert last_attempt(created["id"], "status").outcome == GatewayAttempt.Outcome.TIMEOUT


def test_bare_400_to_a_resent_capture_is_checked_against_the_gateways_status(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.drop_next()  # the capture is done at Stripe; its answer is lost on the way back
    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {}).status_code == 202
    assert stripe_gateway.payment_intents[created["gatewayReference"]]["status"] == "succeeded"
    stripe_gateway.fail_next(400)  # the re-send: a 400 with no code of Stripe's
    make_due(created["id"])

    payments_recover()

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.pending_operation, payment.captured_amount) == ("Completed", "", Decimal("50.00"))


def test_bare_400_to_a_resent_cancel_is_checked_against_the_gateways_status(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.drop_next()
    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/cancel", {}).status_code == 202
    stripe_gateway.fail_next(400)
    make_due(created["id"])

    payments_recover()

    assert Payment.objects.get(pk=created["id"]).status == "Cancelled"


def test_refused_resent_capture_stands_when_the_gateway_still_holds_the_authorization(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.fail_next(500)  # nothing done: the capture is in flight, the intent still requires_capture
    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})
    assert response.json()["pendingOperation"] == "capture", response.content
    stripe_gateway.fail_next(400)
    make_due(created["id"])

    payments_recover()

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.pending_operation) == ("Authorized", "")
    assert stripe_gateway.payment_intents[created["gatewayReference"]]["status"] == "requires_capture"


# --- Adyen --------------------------------------------------------------------------------------


def adyen_payment(api, **overrides):
    return post_json(api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", **overrides))


@pytest.mark.parametrize(
    "reshape",
    [with_fields(pspReference=["PSP"]), with_fields(pspReference=None),
     lambda answer: ["not", "an", "object"]],
    ids=["list-reference", "null-reference", "list-body"],
)
def test_adyen_payment_answered_in_an_unknown_shape_stays_processing(api, adyen_gateway, reshape):
    adyen_gateway.reshape_next(reshape)

    response = adyen_payment(api)

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "Processing"
    assert last_attempt(response.json()["id"], "authorize").outcome == GatewayAttempt.Outcome.TIMEOUT


@pytest.mark.parametrize("path", ["capture", "cancel"])
def test_adyen_capture_or_cancel_answered_in_an_unknown_shape_stays_in_flight(api, adyen_gateway, path):
    created = adyen_payment(api, capture=False).json()
    adyen_gateway.reshape_next(with_fields(paymentPspReference={"not": "text"}))

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/{path}", {})

    assert response.status_code == 202, response.content
    assert response.json()["pendingOperation"] == {"capture": "capture", "cancel": "void"}[path]
    assert last_attempt(created["id"], response.json()["pendingOperation"]).outcome == GatewayAttempt.Outcome.TIMEOUT


# --- any connector --------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyError("amount_received"), TypeError("'NoneType' object"), ValueError("x")])
def test_any_connector_that_cannot_read_its_answer_leaves_the_payment_processing(api, settings, monkeypatch, error):
    from gateways.simulator.connector import SimulatorConnector

    def unreadable(self, request):
        raise error

    monkeypatch.setattr(SimulatorConnector, "authorize", unreadable)
    settings.PGI_GATEWAYS = {"simulator": simulator_options()}

    response = post_json(api, PAYMENTS_URL, payment_body())

    assert (response.status_code, response.json()["status"]) == (201, "Processing")
    assert last_attempt(response.json()["id"], "authorize").outcome == GatewayAttempt.Outcome.TIMEOUT
