"""POST /v1/gateways/{code}/webhooks: signature-checked, idempotent, never moves a final payment."""

import json
import time
from decimal import Decimal

import pytest

from gateways.models import GatewayNotification, SimulatorCharge
from gateways.registry import get_connector
from gateways.simulator.webhooks import SIGNATURE_HEADER, sign
from payments.models import Payment, PaymentStatus, PaymentStatusChange

from ..api.helpers import PAYMENTS_URL, assert_error, payment_body, post_json
from ..factories import PaymentFactory

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "/v1/gateways/simulator/webhooks"


def pending_payment(api) -> tuple[Payment, SimulatorCharge]:
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="account0202"))
    assert response.json()["status"] == "Processing"
    payment = Payment.objects.get(pk=response.json()["id"])
    return payment, SimulatorCharge.objects.get(idempotency_key=payment.id)


def settle(charge: SimulatorCharge, status: str, decline_code: str = "") -> bytes:
    """The gateway settles the charge; returns the body of the notification it would send."""
    SimulatorCharge.objects.filter(pk=charge.pk).update(status=status, decline_code=decline_code)
    charge.refresh_from_db()
    return get_connector("simulator").webhook_body(charge)


def deliver(client, body: bytes, signature: str | None = None, url: str = WEBHOOK_URL):
    headers = {}
    if signature is None:
        signature = get_connector("simulator").signature(body)
    if signature:
        headers[SIGNATURE_HEADER] = signature
    return client.post(url, data=body, content_type="application/json", headers=headers)


def history_count(payment: Payment) -> int:
    return PaymentStatusChange.objects.filter(payment=payment).count()


def test_signed_success_notification_completes_the_payment(api, client):
    payment, charge = pending_payment(api)

    response = deliver(client, settle(charge, SimulatorCharge.Status.SUCCEEDED))

    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "matched": True, "duplicate": False}
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED
    notification = GatewayNotification.objects.get(gateway="simulator", payment_id=payment.id)
    assert (notification.outcome, notification.status) == ("applied", "succeeded")
    last = PaymentStatusChange.objects.filter(payment=payment).last()
    assert (last.from_status, last.to_status, last.source) == ("Processing", "Completed", "webhook")


def test_signed_decline_notification_fails_the_payment_with_its_code(api, client):
    payment, charge = pending_payment(api)

    deliver(client, settle(charge, SimulatorCharge.Status.DECLINED, "INSUFFICIENT_FUNDS"))

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "INSUFFICIENT_FUNDS")
    assert "insufficient funds" in payment.failure_message.lower()


def test_webhook_needs_no_api_key(api, client):
    payment, charge = pending_payment(api)

    response = deliver(client, settle(charge, SimulatorCharge.Status.SUCCEEDED))

    assert "HTTP_AUTHORIZATION" not in response.wsgi_request.META
    assert response.status_code == 200


@pytest.mark.parametrize(
    "signature",
    ["", "garbage", "t=1,v1=abc", "v1=abc", "t=notanumber,v1=abc", "t={now},v1=" + "0" * 64],
)
def test_bad_signature_is_refused_and_changes_nothing(api, client, signature):
    payment, charge = pending_payment(api)
    before = history_count(payment)
    body = settle(charge, SimulatorCharge.Status.SUCCEEDED)

    response = deliver(client, body, signature=signature.format(now=int(time.time())) or "")

    assert_error(response, 400, "INVALID_SIGNATURE")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert history_count(payment) == before
    assert not GatewayNotification.objects.exists()


def test_signature_with_another_secret_is_refused(api, client):
    payment, charge = pending_payment(api)
    body = settle(charge, SimulatorCharge.Status.SUCCEEDED)

    response = deliver(client, body, signature=sign(secret="whsec_attacker", timestamp=int(time.time()), body=body))

    assert_error(response, 400, "INVALID_SIGNATURE")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def test_body_altered_after_signing_is_refused(api, client):
    payment, charge = pending_payment(api)
    body = settle(charge, SimulatorCharge.Status.DECLINED, "DECLINED")
    signature = get_connector("simulator").signature(body)
    altered = body.replace(b'"declined"', b'"succeeded"')
    assert altered != body

    response = deliver(client, altered, signature=signature)

    assert_error(response, 400, "INVALID_SIGNATURE")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


@pytest.mark.parametrize("age", [-1, 1])
def test_signature_outside_the_time_tolerance_is_refused(api, client, settings, age):
    payment, charge = pending_payment(api)
    body = settle(charge, SimulatorCharge.Status.SUCCEEDED)
    secret = settings.PGI_GATEWAYS["simulator"]["webhook_secret"]
    stale = int(time.time()) - age * (settings.PGI_WEBHOOK_TOLERANCE_SECONDS + 30)

    response = deliver(client, body, signature=sign(secret=secret, timestamp=stale, body=body))

    error = assert_error(response, 400, "INVALID_SIGNATURE")
    assert "tolerance" in error["message"]
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def test_signed_body_that_is_not_a_notification_is_refused_as_invalid_notification(client):
    for body in (b"not json", b"{}", b'{"id": "evt_1", "data": {"status": "exploded"}}'):
        assert_error(deliver(client, body), 400, "INVALID_NOTIFICATION")


def test_replayed_notification_is_dropped_by_its_event_id(api, client):
    payment, charge = pending_payment(api)
    body = settle(charge, SimulatorCharge.Status.SUCCEEDED)
    deliver(client, body)
    payment.refresh_from_db()
    completed_at, count = payment.status_changed_at, history_count(payment)

    again = deliver(client, body)

    assert again.status_code == 200
    assert again.json() == {"received": True, "matched": True, "duplicate": True}
    assert GatewayNotification.objects.filter(payment_id=payment.id).count() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.status_changed_at == completed_at
    assert history_count(payment) == count


def test_late_decline_cannot_fail_a_completed_payment(api, client):
    payment, charge = pending_payment(api)
    deliver(client, settle(charge, SimulatorCharge.Status.SUCCEEDED))

    deliver(client, settle(charge, SimulatorCharge.Status.DECLINED, "DECLINED"))

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.failure_code == ""
    late = GatewayNotification.objects.filter(payment_id=payment.id, status="declined").get()
    assert late.outcome == "ignored"


def test_unknown_gateway_code_is_404(client):
    body = b'{"id": "evt_1"}'

    response = deliver(client, body, url="/v1/gateways/nosuchgateway/webhooks")

    assert_error(response, 404, "UNKNOWN_GATEWAY")


def test_notification_for_an_unknown_payment_is_acknowledged_unmatched(client):
    connector = get_connector("simulator")
    body = json.dumps(
        {
            "id": "evt_x",
            "type": "charge.succeeded",
            "created": int(time.time()),
            "data": {"reference": "sim_x", "merchantReference": "pay_unknown", "status": "succeeded",
                     "amount": "50.00", "currency": "USD", "declineCode": ""},
        }
    ).encode()

    response = deliver(client, body, signature=connector.signature(body))

    assert response.status_code == 200
    assert response.json() == {"received": True, "matched": False, "duplicate": False}
    kept = GatewayNotification.objects.get(event_id="evt_x")
    assert (kept.outcome, kept.payment_id, kept.gateway_reference) == ("unmatched", "pay_unknown", "sim_x")
    assert kept.amount == Decimal("50.00")


def test_notification_for_a_payment_of_another_gateway_is_unmatched(client, merchant):
    payment = PaymentFactory(merchant=merchant, status=PaymentStatus.PROCESSING, gateway="stripe")
    charge = SimulatorCharge.objects.create(
        reference="sim_other", idempotency_key=payment.id, amount=payment.amount, currency="USD",
        account="account123", merchant_code=merchant.code, status=SimulatorCharge.Status.SUCCEEDED,
    )

    response = deliver(client, get_connector("simulator").webhook_body(charge))

    assert response.json() == {"received": True, "matched": False, "duplicate": False}
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING
    assert "routed to stripe" in GatewayNotification.objects.get(payment_id=payment.id).detail


def test_webhook_endpoint_only_accepts_post(client):
    assert_error(client.get(WEBHOOK_URL), 405, "METHOD_NOT_ALLOWED")


def test_webhook_body_larger_than_the_upload_limit_is_413_and_changes_nothing(api, client, settings):
    payment, charge = pending_payment(api)
    body = settle(charge, SimulatorCharge.Status.SUCCEEDED)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body) - 1

    response = deliver(client, body)

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def signed_event(payment: Payment, event_type: str, status: str, reference: str, code: str = "") -> bytes:
    data = {"reference": reference, "merchantReference": payment.id, "status": status,
            "amount": str(payment.amount), "currency": payment.currency}
    if code:
        data["declineCode"] = code
    return json.dumps({"id": f"evt_{reference}.{event_type}", "type": event_type, "created": int(time.time()), "data": data}).encode()


def test_notice_for_a_payment_carrying_another_payments_reference_moves_nothing_and_is_flagged(client):
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway_reference="sim_X")

    response = deliver(client, signed_event(payment, "charge.declined", "declined", "sim_Y", "DECLINED"))

    assert response.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_reference, payment.needs_attention) == (PaymentStatus.PROCESSING, "sim_X", True)
    notification = GatewayNotification.objects.get()
    assert (notification.outcome, notification.gateway_reference) == (GatewayNotification.Outcome.FLAGGED, "sim_Y")


def test_notice_with_another_reference_never_overwrites_a_final_payments_reference(client):
    payment = PaymentFactory(status=PaymentStatus.COMPLETED, gateway_reference="sim_X")

    deliver(client, signed_event(payment, "charge.succeeded", "succeeded", "sim_Y"))

    payment.refresh_from_db()
    assert (payment.status, payment.gateway_reference) == (PaymentStatus.COMPLETED, "sim_X")
    assert GatewayNotification.objects.get().outcome == GatewayNotification.Outcome.FLAGGED


def test_first_notice_with_a_reference_fills_it_and_a_later_one_cannot_replace_it(client):
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway_reference="")

    deliver(client, signed_event(payment, "charge.pending", "pending", "sim_A"))
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_reference) == (PaymentStatus.PROCESSING, "sim_A")

    deliver(client, signed_event(payment, "charge.succeeded", "succeeded", "sim_B"))

    payment.refresh_from_db()
    assert (payment.status, payment.gateway_reference) == (PaymentStatus.PROCESSING, "sim_A")

    deliver(client, signed_event(payment, "charge.succeeded", "succeeded", "sim_A"))

    payment.refresh_from_db()
    assert (payment.status, payment.gateway_reference) == (PaymentStatus.COMPLETED, "sim_A")


def test_notice_with_more_decimals_than_an_amount_can_keep_flags_instead_of_rounding(client):
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway_reference="sim_X", amount=Decimal("10.00"))
    body = json.loads(signed_event(payment, "charge.succeeded", "succeeded", "sim_X"))
    body["data"]["amount"] = "9.999999"

    assert deliver(client, json.dumps(body).encode()).status_code == 200

    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention, payment.captured_amount) == (PaymentStatus.PROCESSING, True, None)
