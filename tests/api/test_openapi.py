"""The OpenAPI 3 document at /v1/schema: valid, a superset of the API specification, with errors and auth."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from openapi_schema_validator import OAS30Validator

from pgi.api.serializers import ACCOUNT_PATTERN

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/v1/schema"
PAYMENT_PATH_TEMPLATES = ("/v1/payments/{paymentId}", "/v1/payments/{payment_id}")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def payment_path(schema) -> str:
    found = [p for p in PAYMENT_PATH_TEMPLATES if p in schema["paths"]]
    assert len(found) == 1, list(schema["paths"])
    return found[0]


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    if "allOf" in node and len(node["allOf"]) == 1:
        return resolve(schema, node["allOf"][0])
    return node


def json_body_schema(schema, operation: dict, status: str) -> dict:
    return resolve(schema, operation["responses"][status]["content"]["application/json"]["schema"])


def test_management_command_validates_the_schema_without_warnings(tmp_path):
    target = tmp_path / "schema.json"

    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target),
                 stderr=StringIO())

    assert json.loads(target.read_text())["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "json"}, {}), ({}, {"Accept": "application/json"}), ({}, {"Accept": "application/vnd.oai.openapi+json"})],
)
def test_schema_is_served_as_json_without_a_key(params, headers):
    response = Client().get(SCHEMA_URL, params, headers=headers)

    assert response.status_code == 200
    assert "json" in response.headers["Content-Type"]
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Payment Gateway Integration API"


def test_schema_is_served_as_yaml_by_default():
    response = Client().get(SCHEMA_URL)

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_schema_has_the_specifications_paths_and_operations(schema):
    assert "post" in schema["paths"]["/v1/payments"]
    detail = schema["paths"][payment_path(schema)]
    assert "get" in detail
    assert [p["in"] for p in detail["get"]["parameters"]] == ["path"]
    assert {"/v1/payments/validate", payment_path(schema) + "/status"} <= set(schema["paths"])
    assert "get" in schema["paths"]["/v1/payments"]


def test_payment_schema_has_the_specifications_fields_and_types(schema):
    created = schema["paths"]["/v1/payments"]["post"]
    payment = json_body_schema(schema, created, "201")
    fetched = json_body_schema(schema, schema["paths"][payment_path(schema)]["get"], "200")
    assert payment == fetched

    properties = payment["properties"]
    for name in ("id", "amount", "currency", "status", "fromAccount", "toMerchant", "timestamp"):
        assert name in properties, name
        assert name in payment["required"], name
    assert properties["amount"]["type"] == "number"
    assert properties["refundedAmount"]["type"] == "number"
    assert properties["timestamp"]["format"] == "date-time"
    assert set(resolve(schema, properties["status"])["enum"]) >= {"Pending", "Processing", "Completed", "Failed"}
    for extra in ("reference", "description", "metadata", "gateway", "gatewayReference", "failureCode",
                  "failureMessage", "createdAt", "updatedAt"):
        assert extra in properties, extra


def test_request_body_schema_is_the_input_that_post_accepts(schema):
    body = resolve(schema, schema["paths"]["/v1/payments"]["post"]["requestBody"]["content"]["application/json"]["schema"])

    assert set(body["required"]) == {"amount", "currency", "fromAccount"}
    assert body["properties"]["amount"]["type"] == "number"
    assert {"toMerchant", "reference", "description", "metadata"} <= set(body["properties"])
    assert not {"id", "status", "timestamp"} & set(body["properties"])


def test_bearer_auth_is_the_security_scheme_of_every_merchant_operation(schema):
    schemes = schema["components"]["securitySchemes"]
    assert len(schemes) == 1
    (name, scheme), = schemes.items()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/gateways/"):
                assert operation.get("security", []) in ([], [{}]), (path, method)
            else:
                assert operation["security"] == [{name: []}], (path, method)


def test_error_responses_use_the_error_schema(schema):
    error = resolve(schema, {"$ref": "#/components/schemas/Error"})
    body = resolve(schema, error["properties"]["error"])
    assert set(body["properties"]) == {"code", "message", "details"}
    detail = resolve(schema, body["properties"]["details"]["items"])
    assert set(detail["properties"]) == {"field", "message"}

    post = schema["paths"]["/v1/payments"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "415", "422", "429"} <= set(post)
    assert "404" in schema["paths"][payment_path(schema)]["get"]["responses"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (path, method, status)


def test_list_operation_documents_its_filters_and_pagination(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/v1/payments"]["get"]["parameters"]}

    assert {"status", "createdFrom", "createdTo", "reference", "currency", "cursor", "limit"} <= set(parameters)
    assert parameters["status"]["schema"]["type"] == "array"
    assert parameters["createdFrom"]["schema"]["format"] == "date-time"
    page = json_body_schema(schema, schema["paths"]["/v1/payments"]["get"], "200")
    assert set(page["properties"]) == {"next", "previous", "results"}


def test_status_operation_describes_the_status_alone(schema):
    body = json_body_schema(schema, schema["paths"][payment_path(schema) + "/status"]["get"], "200")

    assert set(body["properties"]) == {"id", "status", "timestamp", "failureCode"}


def test_swagger_ui_and_redoc_are_served_without_a_cdn():
    for path in ("/v1/schema/swagger", "/v1/schema/redoc"):
        response = Client().get(path)

        assert response.status_code == 200, path
        html = response.content.decode()
        assert "drf-spectacular-sidecar" in html or "drf_spectacular_sidecar" in html, path
        for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "googleapis"):
            assert cdn not in html, (path, cdn)


def operations(schema):
    for path, path_item in schema["paths"].items():
        for method, operation in path_item.items():
            yield path, method, operation


def test_every_operation_documents_each_status_it_can_answer(schema):
    for path, method, operation in operations(schema):
        statuses = set(operation["responses"])
        assert {"406", "414", "431", "500"} <= statuses, (path, method)
        if method == "post":
            assert {"411", "413"} <= statuses, (path, method)
        if operation["tags"] == ["Payments"]:
            assert {"400", "401", "429"} <= statuses, (path, method)
        if method == "post" and operation["tags"] == ["Payments"]:
            assert {"409", "413", "415", "422"} <= statuses, (path, method)
    capture = schema["paths"][payment_path(schema) + "/capture"]["post"]["responses"]
    cancel = schema["paths"][payment_path(schema) + "/cancel"]["post"]["responses"]
    assert "CAPTURE_DECLINED" in capture["422"]["description"]
    assert "CANCEL_DECLINED" in cancel["422"]["description"]
    assert {"404", "503"} <= set(capture) & set(cancel)


def test_replay_and_rate_limit_headers_are_declared(schema):
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
                assert "Idempotent-Replayed" in headers, (path, method, status)
            if status == "429":
                assert "Retry-After" in headers, (path, method)


def test_a_new_payment_links_to_what_can_be_done_with_it(schema):
    links = schema["paths"]["/v1/payments"]["post"]["responses"]["201"]["links"]
    operation_ids = {operation["operationId"] for _, _, operation in operations(schema)}

    assert {link["operationId"] for link in links.values()} == {
        "payments_retrieve", "payments_status", "payments_capture", "payments_cancel"
    }
    for link in links.values():
        assert link["operationId"] in operation_ids
        assert link["parameters"] == {"payment_id": "$response.body#/id"}


def test_the_webhook_is_for_gateways_without_an_api_key(schema):
    webhook = schema["paths"]["/v1/gateways/{code}/webhooks"]["post"]

    assert webhook["security"] == []
    assert webhook["tags"] == ["Gateways"]
    assert "INVALID_SIGNATURE" in webhook["responses"]["400"]["description"]
    assert "Gateways" in {tag["name"] for tag in schema["tags"]}


def test_rules_stated_in_prose_are_schema_keywords(schema):
    create = schema["paths"]["/v1/payments"]["post"]
    body = resolve(schema, create["requestBody"]["content"]["application/json"]["schema"])
    assert body["additionalProperties"] is False
    assert body["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert body["properties"]["fromAccount"]["pattern"] == ACCOUNT_PATTERN  # held to the field: test_account_field.py
    amount = body["properties"]["amount"]
    assert (amount["format"], amount["minimum"], amount["exclusiveMinimum"]) == ("decimal", 0, True)
    capture = schema["paths"][payment_path(schema) + "/capture"]["post"]
    capture_body = resolve(schema, capture["requestBody"]["content"]["application/json"]["schema"])
    assert capture_body["additionalProperties"] is False
    cancel = schema["paths"][payment_path(schema) + "/cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False

    parameters = {p["name"]: p for p in schema["paths"]["/v1/payments"]["get"]["parameters"]}
    assert (parameters["limit"]["schema"]["minimum"], parameters["limit"]["schema"]["maximum"]) == (1, 200)
    assert parameters["currency"]["schema"]["pattern"] == "^[A-Z]{3}$"


def test_request_bodies_are_named_after_their_operation(schema):
    names = set(schema["components"]["schemas"])
    create = schema["paths"]["/v1/payments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    capture = schema["paths"][payment_path(schema) + "/capture"]["post"]["requestBody"]["content"]["application/json"]

    assert create == {"$ref": "#/components/schemas/PaymentCreateRequest"}
    assert capture["schema"] == {"$ref": "#/components/schemas/PaymentCaptureRequest"}
    assert not [name for name in names if name.endswith("RequestRequest")]


def test_the_specifications_example_is_named_for_it(schema):
    examples = schema["paths"]["/v1/payments"]["post"]["requestBody"]["content"]["application/json"]["examples"]

    (example,) = examples.values()
    assert example["summary"] == "Example payment from the API specification"
    assert example["value"] == {
        "amount": 50.0, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"
    }


def conforms(schema, value, to: dict) -> bool:
    """Whether `value` is valid against `to`, an OpenAPI 3.0 schema of this document."""
    return OAS30Validator({**to, "components": schema["components"]}).is_valid(value)


@pytest.mark.parametrize(
    ("operation_id", "status", "code"),
    [
        ("payments_create", "201", None),
        ("payments_retrieve", "200", None),
        ("payments_create", "400", "VALIDATION_ERROR"),
        ("payments_retrieve", "404", "PAYMENT_NOT_FOUND"),
        ("payments_create", "422", "CURRENCY_NOT_ENABLED"),
        ("payments_capture", "404", "PAYMENT_NOT_FOUND"),
        ("payments_capture", "422", "CAPTURE_EXCEEDS_AUTHORIZATION"),
        ("payments_cancel", "404", "PAYMENT_NOT_FOUND"),
    ],
)
def test_payment_and_error_responses_carry_examples_that_fit_their_schema(schema, operation_id, status, code):
    (operation,) = [op for _, _, op in operations(schema) if op["operationId"] == operation_id]
    media = operation["responses"][status]["content"]["application/json"]

    assert media["examples"]
    for example in media["examples"].values():
        assert conforms(schema, example["value"], media["schema"]), example
        if code is not None:
            assert example["value"]["error"]["code"] == code
    assert not conforms(schema, {"unexpected": True}, media["schema"])


def test_status_filter_refers_to_the_payment_status_component(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/v1/payments"]["get"]["parameters"]}

    assert parameters["status"]["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/PaymentStatus"}}
    assert parameters["status"]["explode"] is True
    assert "enum" not in json.dumps(parameters["status"])


def test_list_documents_the_account_and_merchant_filters(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/v1/payments"]["get"]["parameters"]}

    for name in ("fromAccount", "merchant"):
        assert parameters[name]["in"] == "query"
        assert parameters[name]["schema"] == {"type": "string", "minLength": 1, "maxLength": 64}
    assert "IBAN" in parameters["fromAccount"]["description"]
    assert "platform key" in parameters["merchant"]["description"]


def test_a_new_payment_declares_its_location_header(schema):
    headers = schema["paths"]["/v1/payments"]["post"]["responses"]["201"]["headers"]

    assert headers["Location"]["schema"] == {"type": "string", "format": "uri"}


def test_amounts_are_exact_decimals_everywhere(schema):
    payment = resolve(schema, {"$ref": "#/components/schemas/Payment"})
    capture = resolve(schema, {"$ref": "#/components/schemas/PaymentCaptureRequest"})

    amounts = (payment["properties"]["amount"], payment["properties"]["refundedAmount"], capture["properties"]["amount"])
    for amount in amounts:
        assert (amount["type"], amount["format"]) == ("number", "decimal")


def test_payments_come_before_the_gateways_webhook(schema):
    paths = list(schema["paths"])

    assert [tag["name"] for tag in schema["tags"]] == ["Payments", "Refunds", "Settlements", "Webhooks", "Gateways"]
    assert paths[0] == "/v1/payments"
    assert paths[-1] == "/v1/gateways/{code}/webhooks"
    webhook = schema["paths"]["/v1/gateways/{code}/webhooks"]["post"]
    assert "for gateways only" in webhook["summary"]
