"""Refunds through the Stripe and Adyen connectors against their local fakes: sent with the refund
id as the idempotency key, and completed by the gateway's answer (Stripe) or by its notification
(Adyen answers `received`; its REFUND notification says whether the money went back)."""

from decimal import Decimal

import pytest

from gateways.models import GatewayNotification
from payments.models import GatewayAttempt, Payment, PaymentStatus
from refunds.models import Refund, RefundStatus
from refunds.services import refund_create, refunds_process

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from ..gateways.fakes.adyen_server import notification_body, notification_item
from ..gateways.fakes.stripe_server import stripe_event
from ..payments.conftest import adyen_gateway, stripe_gateway  # noqa: F401  (fixtures)
from ..payments.test_real_connectors import adyen_webhook, stripe_webhook

pytestmark = pytest.mark.django_db

IDLE = {"completed": 0, "failed": 0, "waiting": 0, "flagged": 0}


def captured(api, **body) -> dict:
    created = post_json(api, PAYMENTS_URL, payment_body(**body)).json()
    assert created["status"] == "Completed", created
    return created


# --- Stripe ---------------------------------------------------------------------------------------


def test_a_stripe_refund_of_a_captured_payment_completes(api, stripe_gateway):  # noqa: F811
    payment = captured(api, fromAccount="pm_card_visa")

    refund = refund_create(payment_id=payment["id"], amount=Decimal("20.00"), reason="damaged")
    assert refunds_process() == {**IDLE, "completed": 1}

    [stripe_refund] = stripe_gateway.refunds.values()
    assert (stripe_refund["amount"], stripe_refund["payment_intent"]) == (2000, payment["gatewayReference"])
    assert stripe_refund["metadata"]["pgi_refund_id"] == refund.id
    [request] = stripe_gateway.requests_to("POST", "/v1/refunds")
    assert request.headers["idempotency-key"] == refund.id
    refund.refresh_from_db()
    assert (refund.status, refund.gateway_reference) == (RefundStatus.COMPLETED, stripe_refund["id"])
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("20.00"))


def test_a_stripe_refund_answered_pending_completes_by_its_webhook(api, client, stripe_gateway):  # noqa: F811
    payment = captured(api, fromAccount="pm_card_visa")
    stripe_gateway.refund_status = "pending"
    refund = refund_create(payment_id=payment["id"], amount=None)

    assert refunds_process() == {**IDLE, "waiting": 1}
    [stripe_refund] = stripe_gateway.refunds.values()
    stripe_refund["status"] = "succeeded"

    response = stripe_webhook(client, stripe_event("refund.updated", stripe_refund))

    assert response.json() == {"received": True, "matched": True, "duplicate": False}
    refund.refresh_from_db()
    assert refund.status == RefundStatus.COMPLETED
    assert GatewayNotification.objects.get(refund_id=refund.id).outcome == "applied"
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.REFUNDED, Decimal("50.00"))


# --- Adyen ----------------------------------------------------------------------------------------

ADYEN_CARD = "shopper_1:8415718415718415"


def adyen_refund_notice(refund: Refund, payment: dict, *, success: bool = True, reason: str = "") -> bytes:
    return notification_body(
        [
            notification_item(
                event_code="REFUND",
                psp_reference=refund.gateway_reference,
                original_reference=payment["gatewayReference"],
                merchant_reference=refund.id,
                value=int(refund.amount * 100),
                currency="EUR",
                success=success,
                reason=reason,
            )
        ]
    )


def test_an_adyen_refund_is_received_then_completed_by_its_refund_notification(api, client, adyen_gateway):  # noqa: F811
    payment = captured(api, currency="EUR", fromAccount=ADYEN_CARD)
    refund = refund_create(payment_id=payment["id"], amount=Decimal("20.00"))

    assert refunds_process() == {**IDLE, "waiting": 1}  # Adyen answers "received"
    [request] = adyen_gateway.requests_to(f"/payments/{payment['gatewayReference']}/refunds")
    assert request.headers["idempotency-key"] == refund.id
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING and refund.gateway_reference

    ack = adyen_webhook(client, adyen_refund_notice(refund, payment))

    assert (ack.status_code, ack.content) == (200, b"[accepted]")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.COMPLETED
    assert refund.status_changes.last().source == "webhook"
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("20.00"))
    assert list(GatewayAttempt.objects.filter(operation="refund").values_list("idempotency_key", "outcome")) == [
        (refund.id, "pending")
    ]


def test_an_adyen_refund_failed_notification_fails_the_refund_and_frees_the_amount(api, client, adyen_gateway):  # noqa: F811
    payment = captured(api, currency="EUR", fromAccount=ADYEN_CARD)
    refund = refund_create(payment_id=payment["id"], amount=Decimal("20.00"))
    refunds_process()
    refund.refresh_from_db()

    adyen_webhook(client, adyen_refund_notice(refund, payment, success=False, reason="Insufficient balance"))

    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == (RefundStatus.FAILED, "GATEWAY_ERROR")
    assert Payment.objects.get(pk=payment["id"]).refunded_amount == 0
    assert refund_create(payment_id=payment["id"], amount=Decimal("50.00")).status == RefundStatus.PENDING
