"""Schemathesis against a live server (pytest-django's `live_server`: real HTTP into the whole WSGI
application, middleware included, on a committed database) and the document that server serves at
/v1/schema. Every /v1 operation gets valid and invalid requests (the examples, coverage and fuzzing
phases); workflows follow the schema's links from a new payment to its id (get, status, capture,
cancel). Every answer must be documented and match its schema, invalid input must be refused, and
none may be a 5xx. Generation is derandomized and bounded: a run is repeatable and takes about a
minute. Inputs that generation cannot make (raw JSON, unknown parameters) are listed at the end."""

import json
import re
import time
from decimal import Decimal

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from gateways.simulator.webhooks import SIGNATURE_HEADER, sign
from pgi.merchants.scopes import ALL_SCOPES
from pgi.merchants.services import api_key_create
from refunds.services import refund_create

from ..conftest import client_for
from ..factories import MerchantFactory, PaymentFactory
from .helpers import PAYMENTS_URL, payment_body, post_json

pytestmark = pytest.mark.fuzz

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHECKS = [*CONFORMANCE, negative_data_rejection]
# The demo merchant as `make run` sets it up (demo_setup).
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "KWD")
# derandomize: the same cases on every run; no example database, so no run depends on an earlier one.
FUZZ_SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
# Operations on one payment, which read their body only once the payment is found.
ON_A_PAYMENT = ["payments_capture", "payments_cancel"]
# Operations on a captured payment, or on one of its refunds.
ON_A_REFUNDABLE_PAYMENT = ["refunds_create", "refunds_list_for_payment"]
ON_A_REFUND = ["refunds_retrieve"]


def load_schema(**config):
    """The document exactly as the server serves it at /v1/schema (fetched in-process at collection).

    schemathesis.pytest.from_fixture would load it from the live server itself, but schemathesis 4.32
    reads a node attribute that pytest 9 no longer has."""
    response = Client().get("/v1/schema", {"format": "json"})
    assert response.status_code == 200, response.content
    return schemathesis.openapi.from_dict(json.loads(response.content), config=SchemathesisConfig.from_dict(config))


class MerchantKey:
    """The key of the merchant that the running test seeded (see `merchant_key`)."""

    value: str | None = None

    def get(self, case, context):
        return self.value

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def with_merchant_key(schema):
    # Gateways sign their notifications: they hold no API key.
    schema.auth(refresh_interval=None).skip_for(path_regex=r"^/v1/gateways/")(MerchantKey)
    return schema


# Workflows follow the links the schema declares; links inferred from the list's contents would make
# them depend on what earlier cases left in the database, which Hypothesis reports as flaky.
schema = with_merchant_key(load_schema(phases={"stateful": {"inference": {"algorithms": []}}}))
# Each case of these gets an Authorized payment of its own in place of the generated id.
on_a_payment = with_merchant_key(
    load_schema(parameters={"path.payment_id": "a new Authorized payment"}).include(operation_id=ON_A_PAYMENT)
)
# Each case of these gets a Completed payment with a refund of 1.00 (or that refund) of its own.
on_a_refundable_payment = with_merchant_key(
    load_schema(parameters={"path.payment_id": "a new Completed payment"}).include(
        operation_id=ON_A_REFUNDABLE_PAYMENT
    )
)
on_a_refund = with_merchant_key(
    load_schema(parameters={"path.refund_id": "a new refund"}).include(operation_id=ON_A_REFUND)
)


@pytest.fixture
def merchant_key(transactional_db):
    """merchant456 as `make run` sets it up, with payments to list; its key goes with every request."""
    merchant = MerchantFactory(code="merchant456", name="Demo Merchant", currencies=CURRENCIES)
    PaymentFactory(merchant=merchant)
    PaymentFactory(merchant=merchant, authorized=True)
    refund_create(payment_id=PaymentFactory(merchant=merchant).id, amount=Decimal("1.00"))  # a refund to list
    MerchantKey.value = api_key_create(name="fuzz", merchant=merchant, scopes=ALL_SCOPES)[1]
    yield MerchantKey.value
    MerchantKey.value = None


@pytest.fixture
def authorized_payment_id(merchant_key):
    """Makes a payment that stops at Authorized, through the API; returns its id."""
    api = client_for(merchant_key)

    def create() -> str:
        response = post_json(api, PAYMENTS_URL, payment_body(capture=False))
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "Authorized", response.content
        return response.json()["id"]

    return create


@pytest.fixture
def refunded_payment_id(merchant_key):
    """Makes a Completed payment through the API, with a refund of 1.00; returns both ids."""
    api = client_for(merchant_key)

    def create() -> tuple[str, str]:
        response = post_json(api, PAYMENTS_URL, payment_body())
        assert response.status_code == 201 and response.json()["status"] == "Completed", response.content
        payment_id = response.json()["id"]
        response = post_json(api, f"{PAYMENTS_URL}/{payment_id}/refunds", {"amount": Decimal("1.00")})
        assert response.status_code == 202, response.content
        return payment_id, response.json()["id"]

    return create


@schema.parametrize()
@settings(max_examples=60, **FUZZ_SETTINGS)
def test_every_operation_answers_as_documented(case, live_server, merchant_key):
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


@on_a_payment.parametrize()
@settings(max_examples=30, **FUZZ_SETTINGS)
def test_capture_and_cancel_of_an_authorized_payment_answer_as_documented(case, live_server, authorized_payment_id):
    # A fresh payment per case: a malformed body must be refused before it can take or release one.
    case.path_parameters = {"payment_id": authorized_payment_id()}
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


@on_a_refundable_payment.parametrize()
@settings(max_examples=30, **FUZZ_SETTINGS)
def test_refunds_of_a_completed_payment_answer_as_documented(case, live_server, refunded_payment_id):
    # A fresh payment per case, so that a refund accepted by one case leaves the next one money to refund.
    case.path_parameters = {"payment_id": refunded_payment_id()[0]}
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


@on_a_refund.parametrize()
@settings(max_examples=10, **FUZZ_SETTINGS)
def test_a_refund_that_exists_answers_as_documented(case, live_server, refunded_payment_id):
    case.path_parameters = {"refund_id": refunded_payment_id()[1]}
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


def test_payment_workflows_answer_as_documented(live_server, merchant_key):
    class PaymentWorkflows(schema.as_state_machine()):
        def before_call(self, case):
            # A valid new payment gets the demo merchant's own currency and precision, so that the
            # links lead to a payment that exists, and is an authorization unless it says otherwise,
            # so that capture and cancel find one to act on; its other fields stay generated.
            if (
                case.operation.label == "POST /v1/payments"
                and case.meta.generation.mode is GenerationMode.POSITIVE
                and isinstance(case.body, dict)
            ):
                case.body.update(amount=Decimal("50.00"), currency="USD", toMerchant="merchant456")
                case.body.setdefault("capture", False)

        def get_call_kwargs(self, case):
            return {"base_url": live_server.url}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    # Generation only, as schemathesis runs its own workflows: shrinking replays a workflow against a
    # database that has moved on since.
    PaymentWorkflows.run(
        settings=settings(max_examples=20, stateful_step_count=5, phases=[Phase.generate], **FUZZ_SETTINGS)
    )


# Invalid input that generation does not make: schemathesis writes bodies from Python values (no
# duplicate keys), treats unknown parameters as harmless, and rarely draws long ids or well-formed
# but hostile signatures. Each must be refused with a documented error and be no 5xx.
LONG_ID = "pay_" + "x" * 240


def simulator_signature(body: bytes) -> str:
    secret = django_settings.PGI_GATEWAYS["simulator"]["webhook_secret"]
    return sign(secret=secret, timestamp=int(time.time()), body=body)


HOSTILE_REQUESTS = {
    "duplicate JSON keys": ("POST", "/v1/payments", {}, '{"amount": 50.00, "amount": 5000.00, '
                            '"currency": "USD", "fromAccount": "account123"}'),
    "a string for capture": ("POST", "/v1/payments", {}, '{"amount": 50.00, "currency": "USD", '
                             '"fromAccount": "account123", "capture": "no"}'),
    "capture body []": ("POST", "/v1/payments/{authorized}/capture", {}, "[]"),
    "capture body null": ("POST", "/v1/payments/{authorized}/capture", {}, "null"),
    "capture body 0": ("POST", "/v1/payments/{authorized}/capture", {}, "0"),
    "cancel body []": ("POST", "/v1/payments/{authorized}/cancel", {}, "[]"),
    "an empty date filter": ("GET", "/v1/payments?createdTo=", {}, None),
    "an unknown list parameter": ("GET", "/v1/payments?colour=blue", {}, None),
    "an unknown parameter of a payment": ("GET", "/v1/payments/{authorized}?colour=blue", {}, None),
    "a long id with an Idempotency-Key": ("POST", f"/v1/payments/{LONG_ID}/capture", {"Idempotency-Key": "k1"}, "{}"),
    "refund body []": ("POST", "/v1/payments/{authorized}/refunds", {}, "[]"),
    "a string for a refund's amount": ("POST", "/v1/payments/{authorized}/refunds", {}, '{"amount": "5.00"}'),
    "duplicate JSON keys in a refund": ("POST", "/v1/payments/{authorized}/refunds", {}, '{"amount": 1, "amount": 2}'),
    "a refund of a long id with an Idempotency-Key": (
        "POST", f"/v1/payments/{LONG_ID}/refunds", {"Idempotency-Key": "k2"}, "{}"),
    "an empty refund status filter": ("GET", "/v1/refunds?status=", {}, None),
    "an unknown refunds list parameter": ("GET", "/v1/refunds?colour=blue", {}, None),
    "an unknown parameter of a payment's refunds": ("GET", "/v1/payments/{authorized}/refunds?colour=blue", {}, None),
    "a long refund id": ("GET", "/v1/refunds/ref_" + "x" * 240, {}, None),
    "an unsigned notification": ("POST", "/v1/gateways/simulator/webhooks", {}, '{"type": "charge.succeeded"}'),
    "a signature timestamp beyond any clock": (
        "POST", "/v1/gateways/simulator/webhooks", {SIGNATURE_HEADER: f"t={'9' * 400},v1=00"}, "{}"),
    "a signature that is not hex": (
        "POST", "/v1/gateways/simulator/webhooks", {SIGNATURE_HEADER: "t={now},v1=\u00e9\u00e9"}, "{}"),
    "a signed body that is not an event": ("POST", "/v1/gateways/simulator/webhooks", {"signed": ""}, "[1, 2]"),
}


def test_hostile_requests_are_refused_as_documented(subtests, live_server, merchant_key, authorized_payment_id):
    # Subtests rather than parameters: one live database for all of them, each reported on its own.
    for name, (method, path, headers, body) in HOSTILE_REQUESTS.items():
        with subtests.test(name):
            response, case = send(live_server, merchant_key, authorized_payment_id, method, path, headers, body)

            assert 400 <= response.status_code < 500, (response.status_code, response.text)
            case.validate_response(response, checks=CONFORMANCE)


def send(live_server, merchant_key, authorized_payment_id, method, path, headers, body):
    """Sends one of HOSTILE_REQUESTS as raw bytes; returns the response and a case of its operation."""
    if "{authorized}" in path:
        path = path.replace("{authorized}", authorized_payment_id())
    headers = {key: value.replace("{now}", str(int(time.time()))) for key, value in headers.items()}
    if headers.pop("signed", None) is not None:
        headers[SIGNATURE_HEADER] = simulator_signature(body.encode())
    if not path.startswith("/v1/gateways/"):
        headers["Authorization"] = f"Bearer {merchant_key}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = requests.request(
        method, live_server.url + path, headers=headers, data=None if body is None else body.encode(), timeout=30
    )
    path = path.partition("?")[0]
    operation = schema.find_operation_by_path(method, path)
    path_parameters = re.fullmatch(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", operation.path), path).groupdict()
    return response, operation.Case(path_parameters=path_parameters)
