"""The client code from the API specification, unchanged except for the base URL and the Authorization header,
against a live server on PostgreSQL."""

import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests

from payments.models import Payment, PaymentStatus

from ..api.helpers import loads

REQUEST_FIELDS = {"id", "amount", "currency", "status", "fromAccount", "toMerchant", "timestamp"}
DESIGN_EXTRAS = {
    "reference",
    "description",
    "metadata",
    "gateway",
    "gatewayReference",
    "failureCode",
    "failureMessage",
    "refundedAmount",
    "capture",
    "capturedAmount",
    "authorizationExpiresAt",
    "pendingOperation",
    "settlementId",
    "createdAt",
    "updatedAt",
}
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture
def base_url(live_server):
    return live_server.url + "/v1"


@pytest.fixture
def headers(merchant_key):
    return {"Authorization": f"Bearer {merchant_key}"}


def test_specification_snippet_creates_and_reads_back_the_payment(base_url, headers, merchant):
    # Process a new payment — exactly the API specification's snippet.
    new_payment = {"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}
    response = requests.post(f"{base_url}/payments", json=new_payment, headers=headers, timeout=30)

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == REQUEST_FIELDS | DESIGN_EXTRAS
    assert created["id"].startswith("pay_")
    assert created["currency"] == "USD"
    assert created["fromAccount"] == "account123"
    assert created["toMerchant"] == "merchant456"
    assert created["status"] == PaymentStatus.COMPLETED
    assert created["gateway"] == "simulator"
    assert created["gatewayReference"]
    assert created["failureCode"] is None and created["failureMessage"] is None
    for name in ("timestamp", "createdAt", "updatedAt"):
        assert UTC_Z.match(created[name]), created[name]
    # The amount is the exact decimal text with the currency's two digits, not a float's 50.0.
    assert re.search(r'"amount":\s*50\.00[,}]', response.text), response.text
    assert re.search(r'"refundedAmount":\s*0\.00[,}]', response.text), response.text

    # Get payment by ID — the snippet's second call, with the id we were given.
    payment_id = created["id"]
    response = requests.get(f"{base_url}/payments/{payment_id}", headers=headers, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json() == created
    assert re.search(r'"amount":\s*50\.00[,}]', response.text), response.text
    stored = Payment.objects.get(pk=payment_id)
    assert stored.amount == Decimal("50.00")
    assert stored.merchant == merchant


def test_timestamp_is_when_the_payment_reached_its_status(base_url, headers, merchant):
    before = datetime.now(timezone.utc)
    response = requests.post(
        f"{base_url}/payments",
        json={"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"},
        headers=headers,
        timeout=30,
    )
    after = datetime.now(timezone.utc)

    body = loads(response.text)
    timestamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert before <= timestamp <= after
    assert timestamp == Payment.objects.get(pk=body["id"]).status_changed_at


def test_snippet_without_authorization_header_is_refused_in_the_error_format(base_url, merchant):
    response = requests.post(
        f"{base_url}/payments",
        json={"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"},
        timeout=30,
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not Payment.objects.exists()
