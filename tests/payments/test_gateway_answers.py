"""Gateway answers that race PGI's own work or contradict its record: a failover racing recovery or a
webhook, captures retried after a refusal, captures refused after they were confirmed, amounts and
currencies that do not fit the payment, and statuses a capture or cancel did not ask for. Each once
was a way to charge twice, lose track of money or leave a payment stuck."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from gateways.base import GatewayResult, GatewayStatus, GatewayTimeout, GatewayUnavailable, Operation
from gateways.models import GatewayNotification, SimulatorCharge
from gateways.registry import get_connector
from gateways.simulator.connector import SimulatorConnector
from gateways.simulator.webhooks import SIGNATURE_HEADER
from payments.models import GatewayAttempt, Payment, PaymentStatusChange
from payments.services import payment_apply_gateway_result, payment_recover, payment_recovery_restart, payments_recover
from payments.services.recovery import recovery_due

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..factories import make_due, put_in_flight
from ..gateways.fakes.adyen_server import notification_body, notification_item

pytestmark = pytest.mark.django_db


def adyen_notice(client, **item):
    return client.post(
        "/v1/gateways/adyen/webhooks", data=notification_body([notification_item(**item)]), content_type="application/json"
    )


def simulator_notice(
    client,
    payment: Payment,
    *,
    amount: str,
    currency: str,
    event_id: str,
    event_type: str = "charge.succeeded",
    status: str = "succeeded",
):
    charge = SimulatorCharge.objects.get(idempotency_key=payment.id)
    body = json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created": int(time.time()),
            "data": {
                "reference": charge.reference,
                "merchantReference": payment.id,
                "status": status,
                "amount": amount,
                "currency": currency,
                "declineCode": "",
            },
        }
    ).encode()
    signature = get_connector("simulator").signature(body)
    return client.post(
        "/v1/gateways/simulator/webhooks", data=body, content_type="application/json", headers={SIGNATURE_HEADER: signature}
    )


def pending_simulator_payment(api) -> Payment:
    body = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0202")).json()
    assert body["status"] == "Processing"
    return Payment.objects.get(pk=body["id"])


# --- failover against recovery and webhooks --------------------------------------------------------


def test_recovery_leaves_a_payment_alone_while_its_request_may_still_be_waiting_on_a_gateway(
    api, settings, two_simulators, monkeypatch
):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "grace_seconds": 0}
    original = SimulatorConnector.authorize
    seen = {}

    def slow_then_unavailable(self, request):
        if self.code == "simulator":
            seen["recovery"] = payments_recover()  # beat's run, while this call still waits
            raise GatewayUnavailable("503 after a long wait")
        return original(self, request)

    monkeypatch.setattr(SimulatorConnector, "authorize", slow_then_unavailable)

    body = post_json(api, PAYMENTS_URL, payment_body()).json()

    assert seen["recovery"] == {"settled": 0, "waiting": 0, "flagged": 0}
    assert list(SimulatorCharge.objects.filter(idempotency_key=body["id"]).values_list("gateway", flat=True)) == [
        "simulator_b"
    ]
    payment = Payment.objects.get(pk=body["id"])
    assert (payment.status, payment.gateway) == ("Completed", "simulator_b")
    assert payment.gateway_reference == SimulatorCharge.objects.get(idempotency_key=body["id"]).reference


def test_failover_stops_when_the_payment_was_settled_meanwhile(api, two_simulators, monkeypatch):
    def settled_by_a_webhook_then_unavailable(self, request):
        payment_apply_gateway_result(
            payment_id=request.payment_id,
            operation=Operation.AUTHORIZE,
            result=GatewayResult(GatewayStatus.SUCCEEDED, reference="sim_elsewhere"),
            source="webhook",
        )
        raise GatewayUnavailable("the answer to this call was lost")

    monkeypatch.setattr(SimulatorConnector, "authorize", settled_by_a_webhook_then_unavailable)

    body = post_json(api, PAYMENTS_URL, payment_body()).json()

    assert (body["status"], body["gateway"]) == ("Completed", "simulator")
    assert [a.gateway for a in GatewayAttempt.objects.filter(payment_id=body["id"])] == ["simulator"]


# --- captures and voids: keys, refusals, unexpected answers ---------------------------------------


def test_a_capture_retried_after_the_gateway_refused_it_gets_its_own_key_and_happens(api, client, adyen_gateway):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {"amount": Decimal("40.00")}).status_code == 202
    adyen_notice(
        client,
        event_code="CAPTURE_FAILED",
        psp_reference="CAPFAIL000000001",
        original_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=4000,
        currency="EUR",
    )
    assert Payment.objects.get(pk=created["id"]).pending_operation == ""

    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {"amount": Decimal("50.00")}).status_code == 202

    keys = [request.headers["idempotency-key"] for request in adyen_gateway.requests_to("/captures")]
    assert keys == [f"{created['id']}-capture", f"{created['id']}-capture-2"]
    assert [c["amount"]["value"] for c in adyen_gateway.payments[created["gatewayReference"]].captures] == [4000, 5000]
    make_due(created["id"])
    payments_recover()
    assert adyen_gateway.requests_to("/captures")[-1].headers["idempotency-key"] == f"{created['id']}-capture-2"


def test_a_capture_failure_after_the_capture_was_confirmed_flags_the_payment(api, client, adyen_gateway):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})
    item = dict(
        psp_reference="CAPPSP0000000009",
        original_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
    )

    adyen_notice(client, event_code="CAPTURE", **item)
    adyen_notice(client, event_code="CAPTURE_FAILED", **item)

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.needs_attention) == ("Completed", True)
    assert "capture failed after confirming it" in payment.attention_reason
    assert GatewayNotification.objects.get(event_type="CAPTURE_FAILED").outcome == "flagged"


def test_capture_of_an_authorization_the_gateway_already_cancelled_ends_cancelled(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.payment_intents[created["gatewayReference"]].update(status="canceled", amount_capturable=0)

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})

    assert (response.status_code, response.json()["status"], response.json()["pendingOperation"]) == (
        200,
        "Cancelled",
        None,
    )


def test_cancel_of_a_payment_the_gateway_already_captured_ends_completed(api, stripe_gateway):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa", capture=False)).json()
    stripe_gateway.payment_intents[created["gatewayReference"]].update(
        status="succeeded", amount_received=5000, amount_capturable=0
    )

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/cancel", {})

    assert (response.status_code, response.json()["status"], response.json()["capturedAmount"]) == (
        200,
        "Completed",
        50.0,
    )


def test_a_refused_capture_clears_a_stale_flag_and_the_next_capture_is_recovered(api, monkeypatch):
    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    put_in_flight(created["id"], "capture", amount=Decimal("50"), key=f"{created['id']}-capture")
    Payment.objects.filter(pk=created["id"]).update(
        needs_attention=True,
        attention_reason="no final answer after 12 looks",
        attention_code="NO_FINAL_ANSWER",
    )
    payment_apply_gateway_result(
        payment_id=created["id"],
        operation=Operation.CAPTURE,
        result=GatewayResult(GatewayStatus.DECLINED, error_code="GATEWAY_ERROR"),
        source="webhook",
    )
    payment = Payment.objects.get(pk=created["id"])
    assert (payment.pending_operation, payment.needs_attention) == ("", False)

    def timeout(self, request):
        raise GatewayTimeout("read timeout")

    monkeypatch.setattr(SimulatorConnector, "capture", timeout)
    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {}).status_code == 202
    make_due(created["id"])

    assert recovery_due().filter(pk=created["id"]).exists()


def test_an_expiry_confirmed_later_by_the_gateway_still_says_expired(api, client, adyen_gateway):
    from payments.services import authorizations_expire

    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:8415718415718415", capture=False)
    ).json()
    Payment.objects.filter(pk=created["id"]).update(authorization_expires_at=timezone.now() - timedelta(minutes=1))
    assert authorizations_expire() == 1
    assert Payment.objects.get(pk=created["id"]).pending_operation == "void"  # Adyen: "received"

    adyen_notice(
        client,
        event_code="CANCELLATION",
        psp_reference="CANCELPSP0000001",
        original_reference=created["gatewayReference"],
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
    )

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.failure_code, payment.pending_operation) == (
        "Cancelled",
        "AUTHORIZATION_EXPIRED",
        "",
    )


# --- answers that contradict PGI's record ---------------------------------------------------------


def test_a_notice_for_more_than_the_payment_flags_it_and_is_kept(api, client):
    payment = pending_simulator_payment(api)

    response = simulator_notice(client, payment, amount="999.00", currency="USD", event_id="evt_big")

    assert response.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention) == ("Processing", True)
    assert "999.00" in payment.attention_reason
    assert GatewayNotification.objects.get(event_id="evt_big").outcome == "flagged"


def test_a_notice_in_another_currency_flags_the_payment_instead_of_completing_it(api, client):
    payment = pending_simulator_payment(api)

    simulator_notice(client, payment, amount="10.00", currency="EUR", event_id="evt_eur")

    payment.refresh_from_db()
    assert (payment.status, payment.captured_amount, payment.needs_attention) == ("Processing", None, True)
    assert "EUR" in payment.attention_reason


def test_an_authorization_for_a_payment_sent_for_immediate_capture_is_flagged(api, client):
    payment = pending_simulator_payment(api)
    assert payment.capture

    response = simulator_notice(
        client, payment, amount="50.00", currency="USD", event_id="evt_auth", event_type="charge.authorized", status="authorized"
    )

    assert response.status_code == 200

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.authorization_expires_at) == ("Processing", True, None)
    assert payment.attention_code == "AUTHORIZED_NOT_CAPTURED"


@pytest.mark.parametrize("metadata", [{}, {"metadata.pgiCapture": "manual"}])
def test_an_adyen_authorisation_completes_a_payment_pgi_sent_for_immediate_capture(api, client, adyen_gateway, metadata):
    created = post_json(api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:RECEIVED1")).json()
    assert (created["status"], created["capture"]) == ("Processing", True)

    adyen_notice(
        client,
        event_code="AUTHORISATION",
        psp_reference=created["gatewayReference"] or "PSPREF0000000001",
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
        additional_data=metadata,  # not signed: PGI's record of the payment decides
    )

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.captured_amount, payment.needs_attention) == ("Completed", Decimal("50.00"), False)


def test_an_adyen_authorisation_saying_immediate_in_its_unsigned_metadata_never_completes_a_manual_payment(
    api, client, adyen_gateway
):
    created = post_json(
        api, PAYMENTS_URL, payment_body(currency="EUR", fromAccount="shopper_1:RECEIVED1", capture=False)
    ).json()
    assert created["status"] == "Processing"

    adyen_notice(
        client,
        event_code="AUTHORISATION",
        psp_reference=created["gatewayReference"] or "PSPREF0000000001",
        merchant_reference=created["id"],
        value=5000,
        currency="EUR",
        additional_data={"metadata.pgiCapture": "immediate"},
    )

    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.captured_amount) == ("Authorized", None)


def test_a_stripe_cancel_notice_fails_a_processing_payment(api, client, stripe_gateway):
    from ..gateways.fakes.stripe_server import sign_webhook, stripe_event

    stripe_gateway.fail_next(500, after_processing=True)
    body = post_json(api, PAYMENTS_URL, payment_body(fromAccount="pm_card_visa")).json()
    assert body["status"] == "Processing"
    [intent] = stripe_gateway.payment_intents.values()
    event = stripe_event("payment_intent.canceled", {**intent, "status": "canceled"})

    client.post(
        "/v1/gateways/stripe/webhooks",
        data=event,
        content_type="application/json",
        headers={"Stripe-Signature": sign_webhook(event)},
    )

    payment = Payment.objects.get(pk=body["id"])
    assert (payment.status, payment.failure_code) == ("Failed", "CANCELLED_AT_GATEWAY")


def test_a_late_capture_refusal_does_not_end_a_void_in_flight(api):
    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    put_in_flight(created["id"], "void", key=f"{created['id']}-void")

    payment_apply_gateway_result(
        payment_id=created["id"],
        operation=Operation.CAPTURE,
        result=GatewayResult(GatewayStatus.DECLINED, error_code="GATEWAY_ERROR"),
        source="webhook",
    )

    assert Payment.objects.get(pk=created["id"]).pending_operation == "void"


def still_authorized(self, request):
    return GatewayResult(GatewayStatus.AUTHORIZED, reference=request.gateway_reference)


def test_a_capture_the_gateway_did_not_take_is_422_and_can_be_sent_again(api, monkeypatch):
    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    monkeypatch.setattr(SimulatorConnector, "capture", still_authorized)

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})

    assert (response.status_code, response.json()["error"]["code"]) == (422, "CAPTURE_DECLINED")
    assert response.json()["error"]["details"] == [{"field": "gateway", "message": "NOT_TAKEN"}]
    payment = Payment.objects.get(pk=created["id"])
    assert (payment.status, payment.pending_operation) == ("Authorized", "")
    monkeypatch.undo()
    assert post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {}).status_code == 200


def test_expiry_leaves_an_authorization_the_gateway_still_holds_for_the_next_run(api, monkeypatch):
    from payments.services import authorizations_expire

    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    Payment.objects.filter(pk=created["id"]).update(authorization_expires_at=timezone.now() - timedelta(minutes=1))
    monkeypatch.setattr(SimulatorConnector, "void", still_authorized)

    assert authorizations_expire() == 0

    assert Payment.objects.get(pk=created["id"]).status == "Authorized"


def test_recovery_that_finds_a_contradiction_flags_and_stops_looking(merchant, principal, monkeypatch):
    from .test_recovery import processing_without_gateway_call

    payment = processing_without_gateway_call(merchant, principal)
    monkeypatch.setattr(
        SimulatorConnector,
        "status",
        lambda self, *, payment_id, gateway_reference="": GatewayResult(
            GatewayStatus.SUCCEEDED, reference="sim_x", amount=Decimal("50.00"), currency="EUR"
        ),
    )
    make_due(payment.id)

    assert payments_recover() == {"settled": 0, "waiting": 0, "flagged": 1}

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.next_recovery_at) == ("Processing", True, None)
    assert "EUR" in payment.attention_reason


# --- which flags an answer clears ------------------------------------------------------------------


def answer(payment: Payment, operation: Operation, status: GatewayStatus = GatewayStatus.SUCCEEDED, **fields) -> Payment:
    consistent = dict(reference=payment.gateway_reference, amount=payment.amount, currency=payment.currency)
    return payment_apply_gateway_result(
        payment_id=payment.id,
        operation=operation,
        result=GatewayResult(status, **{**consistent, **fields}),
        source="webhook",
    )


@pytest.mark.parametrize(
    ("contradiction", "code"),
    [
        ({"amount": Decimal("1000000")}, "AMOUNT_MISMATCH"),
        ({"amount": Decimal("50.001")}, "AMOUNT_MISMATCH"),
        ({"amount": Decimal("-50")}, "AMOUNT_MISMATCH"),
        ({"currency": "EUR"}, "CURRENCY_MISMATCH"),
        ({"reference": "sim_another_payment"}, "REFERENCE_MISMATCH"),
    ],
)
def test_a_contradictions_flag_stays_when_a_consistent_answer_completes_the_payment(api, contradiction, code):
    payment = pending_simulator_payment(api)
    answer(payment, Operation.AUTHORIZE, **contradiction)

    after = answer(payment, Operation.AUTHORIZE)

    assert (after.status, after.needs_attention, after.attention_code) == ("Completed", True, code)


def test_an_authorization_for_an_immediate_capture_keeps_its_flag_when_the_capture_follows(api):
    payment = pending_simulator_payment(api)
    assert answer(payment, Operation.AUTHORIZE, GatewayStatus.AUTHORIZED).attention_code == "AUTHORIZED_NOT_CAPTURED"

    after = answer(payment, Operation.CAPTURE)

    assert (after.status, after.needs_attention, after.attention_code) == ("Completed", True, "AUTHORIZED_NOT_CAPTURED")


def test_a_capture_failed_after_confirmation_keeps_its_flag_when_the_capture_is_confirmed_again(api):
    payment = pending_simulator_payment(api)
    answer(payment, Operation.CAPTURE)
    answer(payment, Operation.CAPTURE, GatewayStatus.DECLINED, error_code="DECLINED")

    after = answer(payment, Operation.CAPTURE)

    assert (after.status, after.needs_attention, after.attention_code) == (
        "Completed",
        True,
        "CAPTURE_FAILED_AFTER_CONFIRMATION",
    )


def test_capture_notices_contradicting_an_authorization_keep_it_flagged_after_an_ordinary_capture(api, client):
    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    payment = Payment.objects.get(pk=created["id"])
    assert payment.status == "Authorized"
    for number, (amount, currency) in enumerate([("1000000.00", "USD"), ("50.001", "USD"), ("-50.00", "USD"), ("50.00", "EUR")]):
        notice = simulator_notice(
            client, payment, amount=amount, currency=currency, event_id=f"evt_odd_{number}", event_type="charge.captured"
        )
        assert notice.status_code == 200

    simulator_notice(client, payment, amount="50.00", currency="USD", event_id="evt_ok", event_type="charge.captured")

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.attention_code) == ("Completed", True, "CURRENCY_MISMATCH")
    assert GatewayNotification.objects.get(event_id="evt_ok").outcome == "applied"
    assert Payment.objects.filter(pk=payment.id, needs_attention=True).exists()  # still in the staff queue


def test_a_merchants_capture_of_a_flagged_authorization_keeps_the_flag(api):
    created = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    payment = Payment.objects.get(pk=created["id"])
    answer(payment, Operation.AUTHORIZE, GatewayStatus.AUTHORIZED, currency="EUR")

    response = post_json(api, f"{PAYMENTS_URL}/{created['id']}/capture", {})

    payment.refresh_from_db()
    assert (response.json()["status"], payment.needs_attention, payment.attention_code) == (
        "Completed",
        True,
        "CURRENCY_MISMATCH",
    )


def test_recoverys_flag_for_no_final_answer_clears_when_the_gateway_answers(api, client, settings):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "max_attempts": 1}
    payment = pending_simulator_payment(api)
    make_due(payment.id)
    assert payments_recover() == {"settled": 0, "waiting": 0, "flagged": 1}
    payment.refresh_from_db()
    assert (payment.needs_attention, payment.attention_code) == (True, "NO_FINAL_ANSWER")

    simulator_notice(client, payment, amount="50.00", currency="USD", event_id="evt_late")

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.attention_code) == ("Completed", False, "")


def test_recovery_giving_up_never_replaces_a_contradictions_flag(api, settings, monkeypatch):
    settings.PGI_RECOVERY = {**settings.PGI_RECOVERY, "max_attempts": 1}
    payment = pending_simulator_payment(api)
    answer(payment, Operation.AUTHORIZE, currency="EUR")

    def timeout(self, *, payment_id, gateway_reference=""):
        raise GatewayTimeout("read timeout")

    monkeypatch.setattr(SimulatorConnector, "status", timeout)
    assert payment_recover(payment_id=payment.id) == "flagged"

    payment.refresh_from_db()
    assert (payment.needs_attention, payment.attention_code) == (True, "CURRENCY_MISMATCH")


def test_staff_clear_a_contradictions_flag_and_the_history_says_who_and_which(api):
    payment = pending_simulator_payment(api)
    answer(payment, Operation.AUTHORIZE, amount=Decimal("1000000"))
    answer(payment, Operation.AUTHORIZE)

    cleared = payment_recovery_restart(payment_id=payment.id, staff_user="alice")

    assert (cleared.status, cleared.needs_attention, cleared.attention_code) == ("Completed", False, "")
    line = PaymentStatusChange.objects.filter(payment_id=payment.id).last()
    assert line.source == "staff"
    assert line.reason.startswith("recovery restarted by alice; flag cleared (was AMOUNT_MISMATCH")
