"""The messages' JSON: the specification's format plus additive fields, amounts exact, schemas met."""

import json
from decimal import Decimal

import pytest

from pgi.events.models import OutboxEvent

from .conftest import assert_valid, rows_for, validator

pytestmark = pytest.mark.django_db


def test_a_processed_payment_is_published_in_the_specifications_format(process):
    payment = process(amount="50.00")

    row = rows_for(payment.id)[-1]
    message = json.loads(row.body)

    assert (row.topic, row.key, row.event_type) == ("payment-events", payment.id, "PAYMENT_PROCESSED")
    # The specification's keys, in its order, then additive fields only.
    assert list(message)[:1] == ["event"] and {"event", "paymentId", "details"} <= set(message)
    assert list(message["details"])[:6] == ["amount", "currency", "fromAccount", "toMerchant", "status", "timestamp"]
    assert message["event"] == "PAYMENT_PROCESSED"
    assert message["paymentId"] == payment.id
    assert message["eventId"] == str(row.event_id)
    assert message["eventVersion"] == 1
    details = message["details"]
    assert (details["currency"], details["fromAccount"], details["toMerchant"], details["status"]) == (
        "USD",
        "account123",  # whole for the bank's systems; webhooks mask it (tests/webhooks)
        "merchant456",
        "Completed",
    )
    assert details["timestamp"] == payment.status_changed_at.isoformat().replace("+00:00", "Z")
    assert message["occurredAt"].endswith("Z")
    assert_valid(row)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [("50", "USD", '"amount":50.00,'), ("1.5", "KWD", '"amount":1.500,'), ("500", "JPY", '"amount":500,')],
)
def test_the_amount_is_the_exact_json_number_with_the_currencys_digits(process, amount, currency, text):
    payment = process(amount=amount, currency=currency)

    for row in OutboxEvent.objects.filter(key=payment.id):
        assert text in row.body, row.body
        assert assert_valid(row)["details"]["amount"] == Decimal(amount)
        # The payload column reads back exactly too (jsonb keeps the digits; floats never appear).
        assert str(row.payload["details"]["amount"]) == text.split(":")[1].rstrip(",")


def test_a_decline_names_its_reason_and_is_told_on_payment_notifications(process):
    payment = process(from_account="acct-0002")

    failed = rows_for(payment.id)[-1]
    notice = rows_for(payment.id, "payment-notifications")

    assert failed.event_type == "PAYMENT_FAILED"
    details = assert_valid(failed)["details"]
    assert (details["status"], details["failureCode"]) == ("Failed", "DECLINED")
    assert [row.event_type for row in notice] == ["PAYMENT_FAILED"]
    message = assert_valid(notice[0])
    assert message["message"] == f"Payment {payment.id} of 50.00 USD to merchant456 failed: {details['failureMessage'].rstrip('.')}."
    assert notice[0].event_id != failed.event_id and notice[0].key == payment.id


def test_the_schemas_refuse_a_message_without_the_specifications_fields():
    assert list(validator("payment-event.schema.json").iter_errors({"event": "PAYMENT_PROCESSED"}))
    bad_amount = {
        "event": "REFUND_COMPLETED",
        "eventId": "0f8a8efb-32d1-47f6-8ae7-0aef6dfba101",
        "eventVersion": 1,
        "occurredAt": "2024-05-17T12:34:56Z",
        "paymentId": "pay_x",
        "details": {"refundId": "ref_x", "amount": "4.00", "currency": "USD", "status": "Completed", "timestamp": "2024-05-17T12:34:56Z"},
        "message": "Refund ref_x completed.",
    }
    errors = [e.message for e in validator("payment-notification.schema.json").iter_errors(bad_amount)]
    assert errors == ["'4.00' is not of type 'number'"]
