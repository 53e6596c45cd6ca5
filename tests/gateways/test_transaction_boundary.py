"""No gateway call ever runs inside a database transaction, and the payment is visibly Processing
(committed) while the gateway is being called."""

import pytest

from payments.models import Payment, PaymentStatus

from ..api.helpers import PAYMENTS_URL, payment_body, post_json
from .connectors import TransactionProbeConnector


@pytest.fixture
def probe_gateway(settings):
    settings.PGI_GATEWAYS = {"probe": {"class": "tests.gateways.connectors.TransactionProbeConnector"}}
    settings.PGI_DEFAULT_GATEWAY = "probe"
    TransactionProbeConnector.calls = []
    yield TransactionProbeConnector
    TransactionProbeConnector.calls = []


@pytest.mark.django_db(transaction=True)
def test_gateway_is_called_outside_any_transaction_after_processing_is_committed(probe_gateway, api):
    response = post_json(api, PAYMENTS_URL, payment_body())

    assert response.status_code == 201, response.content
    payment = Payment.objects.get()
    assert probe_gateway.calls == [
        {"payment_id": payment.id, "in_atomic_block": False, "committed_status": PaymentStatus.PROCESSING}
    ]
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.gateway == "probe"
    assert payment.gateway_reference == f"probe_{payment.id}"


@pytest.mark.django_db(transaction=True)
def test_validate_never_calls_the_gateway(probe_gateway, api):
    response = post_json(api, "/v1/payments/validate", payment_body())

    assert response.status_code == 200
    assert probe_gateway.calls == []
