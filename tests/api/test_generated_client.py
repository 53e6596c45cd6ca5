"""A Python client generated with openapi-python-client from the live /v1/schema works for the
API specification's example: create, read, list page by page, capture, and errors as typed models."""

import importlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "pgi_generated_client"
SPECIFICATION_EXAMPLE = {"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}


@pytest.fixture
def generated(live_server, tmp_path):
    """The client package, generated into tmp_path from the document the live server serves."""
    with urllib.request.urlopen(f"{live_server.url}/v1/schema?format=json") as response:
        (tmp_path / "schema.json").write_bytes(response.read())
    bin_dir = str(Path(sys.executable).parent)  # the generator formats its output with ruff from here
    result = subprocess.run(
        [os.path.join(bin_dir, "openapi-python-client"), "generate", "--path", "schema.json",
         "--meta", "none", "--output-path", PACKAGE],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_runs_the_specifications_example(generated, live_server, merchant_key):
    from pgi_generated_client import AuthenticatedClient
    from pgi_generated_client.api.payments import (
        payments_capture,
        payments_create,
        payments_list,
        payments_retrieve,
    )
    from pgi_generated_client.models import (
        Error,
        Payment,
        PaymentCaptureRequest,
        PaymentCreateRequest,
        PaymentPage,
        PaymentStatus,
    )

    client = AuthenticatedClient(base_url=live_server.url, token=merchant_key)

    created = payments_create.sync(client=client, body=PaymentCreateRequest.from_dict(SPECIFICATION_EXAMPLE))
    assert isinstance(created, Payment), created
    assert (created.amount, created.currency, created.to_merchant) == (50.0, "USD", "merchant456")
    assert created.status == PaymentStatus.COMPLETED

    read = payments_retrieve.sync(client=client, payment_id=created.id)
    assert isinstance(read, Payment) and read.id == created.id

    for _ in range(2):  # three payments, listed two to a page
        payments_create.sync(client=client, body=PaymentCreateRequest.from_dict(SPECIFICATION_EXAMPLE))
    first = payments_list.sync(client=client, limit=2, status=[PaymentStatus.COMPLETED])
    assert isinstance(first, PaymentPage) and len(first.results) == 2
    # `next` is followed as given: it keeps the filters and the limit.
    second = PaymentPage.from_dict(client.get_httpx_client().get(first.next_).json())
    assert [p.id for p in second.results] == [created.id] and second.next_ is None

    authorized = payments_create.sync(
        client=client, body=PaymentCreateRequest.from_dict({**SPECIFICATION_EXAMPLE, "capture": False})
    )
    assert authorized.status == PaymentStatus.AUTHORIZED
    too_much = payments_capture.sync(client=client, payment_id=authorized.id, body=PaymentCaptureRequest(amount=60.00))
    assert isinstance(too_much, Error) and too_much.error.code == "CAPTURE_EXCEEDS_AUTHORIZATION"
    assert too_much.error.details[0].field == "amount"
    captured = payments_capture.sync(client=client, payment_id=authorized.id, body=PaymentCaptureRequest())
    assert isinstance(captured, Payment), captured
    assert (captured.status, captured.captured_amount) == (PaymentStatus.COMPLETED, 50.0)

    missing = payments_retrieve.sync(client=client, payment_id="pay_06f3k1v2d8m4q9r7t5w0x2y4z6")
    assert isinstance(missing, Error) and missing.error.code == "PAYMENT_NOT_FOUND"


def test_a_generated_client_gets_each_documented_error_as_the_error_model(generated, live_server, merchant_key):
    from pgi_generated_client import AuthenticatedClient
    from pgi_generated_client.api.payments import payments_create
    from pgi_generated_client.models import Error, PaymentCreateRequest

    client = AuthenticatedClient(base_url=live_server.url, token=merchant_key, raise_on_unexpected_status=True)
    refused = payments_create.sync_detailed(
        client=client, body=PaymentCreateRequest.from_dict({**SPECIFICATION_EXAMPLE, "currency": "CHF"})
    )
    unauthenticated = payments_create.sync_detailed(
        client=AuthenticatedClient(base_url=live_server.url, token="pgi_wrong", raise_on_unexpected_status=True),
        body=PaymentCreateRequest.from_dict(SPECIFICATION_EXAMPLE),
    )

    assert refused.status_code == 422 and isinstance(refused.parsed, Error)
    assert refused.parsed.error.code == "CURRENCY_NOT_ENABLED"
    assert refused.parsed.error.details[0].field == "currency"
    assert unauthenticated.status_code == 401 and unauthenticated.parsed.error.code == "UNAUTHENTICATED"


def test_a_generated_client_refunds_a_payment(generated, live_server, merchant_key):
    from pgi_generated_client import AuthenticatedClient
    from pgi_generated_client.api.payments import payments_create
    from pgi_generated_client.api.refunds import (
        refunds_create,
        refunds_list,
        refunds_list_for_payment,
        refunds_retrieve,
    )
    from pgi_generated_client.models import (
        Error,
        PaymentCreateRequest,
        Refund,
        RefundCreateRequest,
        RefundPage,
        RefundStatus,
    )

    client = AuthenticatedClient(base_url=live_server.url, token=merchant_key)
    payment = payments_create.sync(client=client, body=PaymentCreateRequest.from_dict(SPECIFICATION_EXAMPLE))

    refund = refunds_create.sync(
        client=client, payment_id=payment.id, body=RefundCreateRequest(amount=20.00, reason="Returned item")
    )
    assert isinstance(refund, Refund), refund
    assert (refund.payment_id, refund.amount, refund.status) == (payment.id, 20.0, RefundStatus.PENDING)
    too_much = refunds_create.sync(client=client, payment_id=payment.id, body=RefundCreateRequest(amount=30.01))
    assert isinstance(too_much, Error) and too_much.error.code == "REFUND_EXCEEDS_AVAILABLE"

    assert refunds_retrieve.sync(client=client, refund_id=refund.id).id == refund.id
    page = refunds_list_for_payment.sync(client=client, payment_id=payment.id)
    assert isinstance(page, RefundPage) and [r.id for r in page.results] == [refund.id]
    listed = refunds_list.sync(
        client=client, payment_id=payment.id, status=[RefundStatus.PENDING, RefundStatus.COMPLETED]
    )
    assert [r.id for r in listed.results] == [refund.id]
    missing = refunds_retrieve.sync(client=client, refund_id="ref_06f3k2a9c1m4q9r7t5w0x2y4z6")
    assert isinstance(missing, Error) and missing.error.code == "REFUND_NOT_FOUND"
