"""Schemathesis against a live server: for generated requests (valid and invalid), every response of the
merchant API is documented in /v1/schema and matches it, and none is a 500."""

import json

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..factories import PaymentFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def load_schema():
    # The document exactly as /v1/schema serves it, generated in-process at collection time.
    document = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(document)))


schema = load_schema().exclude(path_regex=r"^/v1/gateways/")


@pytest.fixture
def auth(merchant_key):
    return {"Authorization": f"Bearer {merchant_key}"}


@pytest.fixture
def existing_payments(merchant):
    return [PaymentFactory(merchant=merchant) for _ in range(3)]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_responses_conform_to_the_schema(case, live_server, auth, existing_payments):
    case.call_and_validate(base_url=live_server.url, headers=auth, checks=CHECKS)


def test_an_existing_payment_and_its_status_conform_to_the_schema(live_server, auth, existing_payments):
    payment = existing_payments[0]
    path_parameter = "payment_id"
    for path in ("/v1/payments/{payment_id}", "/v1/payments/{payment_id}/status"):
        case = schema[path]["GET"].Case(path_parameters={path_parameter: payment.id})

        response = case.call_and_validate(base_url=live_server.url, headers=auth, checks=CHECKS)

        assert response.status_code == 200
        assert response.json()["id"] == payment.id
