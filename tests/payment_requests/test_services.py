"""A payment request goes through the REST API's services once per request id, as a platform key
acting for the merchant it names."""

from decimal import Decimal

import pytest

from payment_requests import services
from payment_requests.messages import Refused, message_read
from payment_requests.models import PaymentRequest
from payment_requests.services import Origin, RequesterKeyRevoked, payment_request_process, requester_principal
from payments.models import Payment, PaymentStatus
from pgi.events.models import OutboxEvent
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create, api_key_revoke

from .conftest import request_bytes

pytestmark = pytest.mark.django_db

KEY_NAME = "payment-requests"


def process(offset: int = 0, **fields):
    return payment_request_process(
        message=message_read(request_bytes(**fields)),
        origin=Origin(topic="payment-requests", partition=1, offset=offset),
        principal=requester_principal(name=KEY_NAME),
    )


def event_types(payment_id: str) -> list[str]:
    return list(OutboxEvent.objects.filter(key=payment_id, topic="payment-events").order_by("id").values_list("event_type", flat=True))


def test_a_request_creates_one_payment_through_the_gateway_with_its_events(bank_merchant):
    handled = process(offset=7, requestId="tps-0001", amount="50.00")

    payment = handled.payment
    assert handled.created
    assert (payment.status, payment.amount, payment.merchant, payment.gateway) == (
        PaymentStatus.COMPLETED, Decimal("50.00"), bank_merchant, "simulator"
    )
    assert payment.reference == "tps-0001"  # no reference sent: the request names the payment's events
    assert payment.api_key.name == KEY_NAME and payment.api_key.is_platform
    assert event_types(payment.id) == ["PAYMENT_CREATED", "PAYMENT_STATUS_UPDATED", "PAYMENT_PROCESSED"]
    record = PaymentRequest.objects.get(request_id="tps-0001")
    assert (record.payment_id, record.topic, record.partition, record.offset) == (payment.id, "payment-requests", 1, 7)


def test_the_same_request_again_creates_nothing_and_names_the_first_payment(bank_merchant):
    first = process(requestId="tps-0002", amount="50.00")
    events = OutboxEvent.objects.count()

    again = process(offset=9, requestId="tps-0002", amount="50")  # the same amount, spelled otherwise

    assert not again.created and again.payment.id == first.payment.id
    assert Payment.objects.count() == 1 and OutboxEvent.objects.count() == events


def test_a_reference_equal_to_the_request_id_means_the_same_as_none(bank_merchant):
    first = process(requestId="tps-0007")

    again = process(requestId="tps-0007", reference="tps-0007")

    assert not again.created and again.payment.id == first.payment.id


def test_the_same_request_id_with_another_payment_is_refused_and_creates_nothing(bank_merchant):
    first = process(requestId="tps-0003", amount="50.00")

    with pytest.raises(Refused) as refused:
        process(requestId="tps-0003", amount="60.00")

    assert refused.value.code == "REQUEST_ID_REUSED" and first.payment.id in refused.value.reason
    assert Payment.objects.count() == 1


def test_a_declined_payment_is_an_outcome_not_a_refusal(bank_merchant):
    handled = process(requestId="tps-0004", fromAccount="acct-0051")

    assert handled.created and handled.payment.status == PaymentStatus.FAILED
    assert handled.payment.failure_code == "INSUFFICIENT_FUNDS"
    assert event_types(handled.payment.id)[-1] == "PAYMENT_FAILED"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"toMerchant": "nobody"}, "UNKNOWN_MERCHANT"),
        ({"currency": "GBP"}, "CURRENCY_NOT_ENABLED"),
        ({"currency": "JPY", "amount": "10.5"}, "VALIDATION_ERROR"),
    ],
)
def test_what_the_rest_api_refuses_is_refused_with_its_code_and_nothing_is_stored(bank_merchant, fields, code):
    with pytest.raises(Refused) as refused:
        process(requestId="tps-0005", **fields)

    assert refused.value.code == code and refused.value.request_id == "tps-0005"
    assert not Payment.objects.exists() and not PaymentRequest.objects.exists()


def test_the_consumer_acts_as_one_platform_key_created_once_without_a_usable_secret(db):
    first = requester_principal(name=KEY_NAME)
    second = requester_principal(name=KEY_NAME)

    assert first.api_key.pk == second.api_key.pk and first.is_platform
    assert ApiKey.objects.filter(name=KEY_NAME).count() == 1


def test_a_revoked_key_stops_the_consumer_taking_payments_and_a_new_one_of_that_name_resumes(db):
    revoked = requester_principal(name=KEY_NAME).api_key
    api_key_revoke(api_key=revoked)

    with pytest.raises(RequesterKeyRevoked):
        requester_principal(name=KEY_NAME)
    assert ApiKey.objects.filter(name=KEY_NAME).count() == 1  # not silently replaced

    replacement, _ = api_key_create(name=KEY_NAME, merchant=None)
    assert requester_principal(name=KEY_NAME).api_key == replacement


def test_an_expired_key_stops_the_consumer_and_a_rotated_successor_takes_over(db):
    from datetime import timedelta

    from django.utils import timezone

    from pgi.merchants.services import api_key_rotate

    old = requester_principal(name=KEY_NAME).api_key
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(RequesterKeyRevoked):
        requester_principal(name=KEY_NAME)

    ApiKey.objects.filter(pk=old.pk).update(expires_at=None)
    successor, _ = api_key_rotate(api_key=old, grace=timedelta(0))
    assert requester_principal(name=KEY_NAME).api_key == successor


@pytest.mark.django_db(transaction=True)
def test_a_request_created_meanwhile_by_another_consumer_rolls_this_payment_back(bank_merchant, monkeypatch):
    first = process(requestId="tps-0006")
    events = OutboxEvent.objects.count()
    real_already = services._already
    looks = []

    def missed_once(message, fingerprint):
        # The race: this consumer looked before the other one committed the request.
        looks.append(message.request_id)
        return None if len(looks) == 1 else real_already(message, fingerprint)

    monkeypatch.setattr(services, "_already", missed_once)
    again = process(requestId="tps-0006")

    assert len(looks) == 2 and not again.created and again.payment.id == first.payment.id
    assert Payment.objects.count() == 1 and OutboxEvent.objects.count() == events
