"""GET /v1/payments/{id}/status answers the status alone; POST /v1/payments/validate checks and creates nothing."""

from decimal import Decimal

import pytest

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatus, PaymentStatusChange
from pgi.api.models import IdempotencyRecord
from pgi.merchants.models import MerchantCurrency

from ..api.helpers import PAYMENTS_URL, VALIDATE_URL, assert_error, loads, payment_body, post_json
from ..factories import PaymentFactory

pytestmark = pytest.mark.django_db


def test_status_returns_id_status_timestamp_and_failure_code_only(api, merchant):
    payment = PaymentFactory(merchant=merchant, status=PaymentStatus.FAILED, failure_code="DECLINED")

    response = api.get(f"{PAYMENTS_URL}/{payment.id}/status")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"id", "status", "timestamp", "failureCode"}
    assert body["id"] == payment.id
    assert body["status"] == "Failed"
    assert body["failureCode"] == "DECLINED"
    assert body["timestamp"] == payment.status_changed_at.isoformat().replace("+00:00", "Z")


def test_status_of_a_successful_payment_has_a_null_failure_code(api):
    created = post_json(api, PAYMENTS_URL, payment_body()).json()

    body = api.get(f"{PAYMENTS_URL}/{created['id']}/status").json()

    assert body == {
        "id": created["id"],
        "status": "Completed",
        "timestamp": created["timestamp"],
        "failureCode": None,
    }


def test_status_of_another_merchants_payment_is_404(api, other_merchant):
    payment = PaymentFactory(merchant=other_merchant)

    assert_error(api.get(f"{PAYMENTS_URL}/{payment.id}/status"), 404, "PAYMENT_NOT_FOUND")


def assert_nothing_created():
    assert not Payment.objects.exists()
    assert not PaymentStatusChange.objects.exists()
    assert not SimulatorCharge.objects.exists()


def test_validate_accepts_a_good_payment_and_creates_nothing(api, merchant):
    response = post_json(api, VALIDATE_URL, payment_body(fromAccount="GB82 WEST 1234 5698 7654 32"))

    assert response.status_code == 200, response.content
    assert loads(response.content) == {
        "valid": True,
        "amount": Decimal("50.00"),
        "currency": "USD",
        "fromAccount": "GB82WEST12345698765432",
        "toMerchant": "merchant456",
    }
    assert b'"amount":50.00' in response.content
    assert_nothing_created()


def test_validate_writes_the_amount_with_the_currency_digits(api):
    response = post_json(api, VALIDATE_URL, '{"amount": 1.5, "currency": "KWD", "fromAccount": "account123"}')

    assert b'"amount":1.500' in response.content


@pytest.mark.parametrize("account", ["account0002", "account0051", "account0408", "account0202"])
def test_validate_never_reaches_the_gateway(api, account):
    response = post_json(api, VALIDATE_URL, payment_body(fromAccount=account))

    assert response.status_code == 200
    assert_nothing_created()


def bad_requests(merchant, other_merchant):
    MerchantCurrency.objects.filter(merchant=merchant, currency="USD").update(max_amount=Decimal("100"))
    return [
        payment_body(amount=Decimal("0")),
        payment_body(amount=Decimal("50.001")),
        payment_body(amount=Decimal("100.01")),
        payment_body(currency="GBP"),
        payment_body(currency="usd"),
        payment_body(fromAccount="GB82WEST12345698765433"),
        payment_body(toMerchant=other_merchant.code),
        payment_body(status="Completed"),
        payment_body(metadata={f"k{i}": "v" for i in range(21)}),
        '{"amount": 50.00,',
        "[]",
    ]


def test_validate_gives_the_same_error_that_post_would(api, merchant, other_merchant):
    for body in bad_requests(merchant, other_merchant):
        validated = post_json(api, VALIDATE_URL, body)
        posted = post_json(api, PAYMENTS_URL, body)

        assert validated.status_code == posted.status_code, body
        assert 400 <= validated.status_code < 500, body
        assert loads(validated.content) == loads(posted.content), body
    assert_nothing_created()


def test_validate_refuses_non_json_like_post(api):
    assert_error(api.post(VALIDATE_URL, data="x", content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_validate_for_a_platform_key_names_the_merchant(platform_api, merchant):
    ok = post_json(platform_api, VALIDATE_URL, payment_body())
    missing = post_json(platform_api, VALIDATE_URL, payment_body(toMerchant=...))

    assert ok.status_code == 200 and ok.json()["toMerchant"] == merchant.code
    assert_error(missing, 400, "VALIDATION_ERROR", field="toMerchant")


def test_validate_with_an_idempotency_key_replays_its_answer(api):
    first = post_json(api, VALIDATE_URL, payment_body(), **{"Idempotency-Key": "check-1"})
    second = post_json(api, VALIDATE_URL, payment_body(), **{"Idempotency-Key": "check-1"})

    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.count() == 1
    assert_nothing_created()
