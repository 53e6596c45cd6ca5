"""Notifications are applied by the handler the owning app registered for their operation, in the
transaction that stores them; an operation nobody handles is kept `recorded`."""

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateways import handlers
from gateways.base import GatewayResult, GatewayStatus, Operation, RefundResult, RefundStatus, WebhookEvent
from gateways.handlers import notification_handler, notification_handler_register
from gateways.models import GatewayNotification
from gateways.services import notification_receive
from payments.handlers import payment_notification_apply
from refunds.handlers import refund_notification_apply
from payments.models import PaymentStatus

from ..factories import PaymentFactory

pytestmark = pytest.mark.django_db


def refund_notice(event_id: str, payment_id: str) -> WebhookEvent:
    return WebhookEvent(
        event_id=event_id,
        operation=Operation.REFUND,
        payment_id=payment_id,
        refund_id="ref_1",
        refund_result=RefundResult(status=RefundStatus.SUCCEEDED, reference="sim_r1", amount=Decimal("5.00"), currency="USD"),
    )


def test_payments_applies_authorize_capture_void_and_status_notices_and_refunds_applies_refund_notices():
    payment_operations = (Operation.AUTHORIZE, Operation.CAPTURE, Operation.VOID, Operation.STATUS)

    assert [notification_handler(op) for op in payment_operations] == [payment_notification_apply] * 4
    assert notification_handler(Operation.REFUND) is refund_notification_apply


def test_a_second_handler_for_an_operation_is_refused_and_the_first_stays():
    def other(*, gateway, event):
        return GatewayNotification.Outcome.IGNORED, ""

    with pytest.raises(ImproperlyConfigured):
        notification_handler_register(Operation.AUTHORIZE, other)

    notification_handler_register(Operation.AUTHORIZE, payment_notification_apply)  # ready() again
    assert notification_handler(Operation.AUTHORIZE) is payment_notification_apply


def test_a_notification_whose_operation_no_app_handles_is_kept_recorded(merchant, monkeypatch):
    # As refund notices will be if refunds registers no handler: gateways itself applies nothing.
    monkeypatch.delitem(handlers._handlers, Operation.REFUND)

    receipt = notification_receive(gateway="simulator", event=refund_notice("evt_r0", "pay_nope"))

    assert (receipt.notification.outcome, receipt.matched, receipt.duplicate) == ("recorded", True, False)


def test_a_payment_notice_is_applied_by_the_payments_handler(merchant):
    payment = PaymentFactory(merchant=merchant, status=PaymentStatus.PROCESSING)
    event = WebhookEvent(
        event_id="evt_ok", operation=Operation.AUTHORIZE, payment_id=payment.id,
        result=GatewayResult(status=GatewayStatus.SUCCEEDED, reference="sim_1", amount=payment.amount, currency="USD"),
    )

    receipt = notification_receive(gateway="simulator", event=event)

    assert (receipt.notification.outcome, receipt.matched) == ("applied", True)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.COMPLETED


def test_a_notification_whose_handler_fails_is_not_stored_nor_applied_and_its_redelivery_is(merchant, monkeypatch):
    payment = PaymentFactory(merchant=merchant, status=PaymentStatus.PROCESSING)
    event = WebhookEvent(
        event_id="evt_fail", operation=Operation.AUTHORIZE, payment_id=payment.id,
        result=GatewayResult(status=GatewayStatus.DECLINED, reference="sim_1"),
    )

    def failing_after_the_move(*, gateway, event):
        payment_notification_apply(gateway=gateway, event=event)
        raise RuntimeError("database went away")

    monkeypatch.setitem(handlers._handlers, Operation.AUTHORIZE, failing_after_the_move)
    with pytest.raises(RuntimeError):
        notification_receive(gateway="simulator", event=event)

    assert not GatewayNotification.objects.filter(event_id="evt_fail").exists()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING

    monkeypatch.setitem(handlers._handlers, Operation.AUTHORIZE, payment_notification_apply)
    receipt = notification_receive(gateway="simulator", event=event)
    assert (receipt.notification.outcome, receipt.duplicate) == ("applied", False)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED


def test_a_refund_notice_naming_no_refund_pgi_made_is_kept_unmatched(merchant):
    payment = PaymentFactory(merchant=merchant)

    receipt = notification_receive(gateway="simulator", event=refund_notice("evt_r1", payment.id))

    kept = receipt.notification
    assert (kept.outcome, kept.payment_id, kept.refund_id, kept.status, receipt.matched) == (
        "unmatched", payment.id, "ref_1", "succeeded", False
    )


@pytest.mark.parametrize("gateway_of_payment", ["stripe", None])
def test_a_refund_notice_naming_no_payment_of_the_gateway_is_unmatched(merchant, gateway_of_payment):
    payment_id = PaymentFactory(merchant=merchant, gateway=gateway_of_payment).id if gateway_of_payment else "pay_nope"

    receipt = notification_receive(gateway="simulator", event=refund_notice("evt_r2", payment_id))

    assert (receipt.notification.outcome, receipt.matched) == ("unmatched", False)
