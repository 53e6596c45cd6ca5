"""Schemathesis against a live server: every /v1 operation of the schema that server serves at
/v1/schema, with valid and invalid requests (the examples, coverage and fuzzing phases) and in
workflows that follow the schema's links from a new payment to its id (get, status, capture, cancel).
Every answer must be documented and match its schema, invalid input must be refused, and none may be
a 5xx. Generation is derandomized and bounded so that a run is repeatable and takes about a minute."""

import json
from decimal import Decimal

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from payments.models import PaymentStatus
from pgi.merchants.services import api_key_create

from ..factories import MerchantFactory, PaymentFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# The demo merchant as `make run` sets it up (demo_setup): its own payments succeed in these.
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "KWD")
# derandomize: the same cases on every run; no example database, so no run depends on an earlier one.
FUZZ_SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def load_schema():
    """The document exactly as the server serves it at /v1/schema (fetched in-process at collection)."""
    response = Client().get("/v1/schema", {"format": "json"})
    assert response.status_code == 200, response.content
    return schemathesis.openapi.from_dict(json.loads(response.content))


schema = load_schema()


@schema.auth(refresh_interval=None).skip_for(path_regex=r"^/v1/gateways/")  # gateways sign, they hold no key
class MerchantKey:
    """The key of the merchant that the running test seeded (see `merchant_key`)."""

    value: str | None = None

    def get(self, case, context):
        return self.value

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def merchant_key(transactional_db):
    """merchant456 as `make run` sets it up, with a payment to list; its key goes with every request."""
    merchant = MerchantFactory(code="merchant456", name="Demo Merchant", currencies=CURRENCIES)
    PaymentFactory(merchant=merchant)
    PaymentFactory(merchant=merchant, status=PaymentStatus.AUTHORIZED, capture=False)
    MerchantKey.value = api_key_create(name="fuzz", merchant=merchant)[1]
    yield MerchantKey.value
    MerchantKey.value = None


@schema.parametrize()
@settings(max_examples=30, **FUZZ_SETTINGS)
def test_every_operation_answers_as_documented(case, live_server, merchant_key):
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


def test_payment_workflows_answer_as_documented(live_server, merchant_key):
    class PaymentWorkflows(schema.as_state_machine()):
        def before_call(self, case):
            # A new payment starts every workflow: a valid one is made payable by the demo merchant
            # (its currency and precision), so that the links lead to a payment that exists.
            body = case.body
            if (
                case.operation.label == "POST /v1/payments"
                and case.meta.generation.mode is GenerationMode.POSITIVE
                and isinstance(body, dict)
            ):
                body.update(amount=Decimal("50.00"), currency="USD", toMerchant="merchant456")

        def get_call_kwargs(self, case):
            return {"base_url": live_server.url}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    PaymentWorkflows.run(settings=settings(max_examples=40, stateful_step_count=6, **FUZZ_SETTINGS))
