"""Assertions and request helpers shared by the API tests."""

import json
from decimal import Decimal

import simplejson

PAYMENTS_URL = "/v1/payments"
VALIDATE_URL = "/v1/payments/validate"

# The example payment from the API specification, with the amount as an exact Decimal (sent as the JSON number 50.00).
SPECIFICATION_PAYMENT = {
    "amount": Decimal("50.00"),
    "currency": "USD",
    "fromAccount": "account123",
    "toMerchant": "merchant456",
}


def dumps(data) -> str:
    """JSON text with Decimals written exactly (DRF's test renderer would turn them into floats)."""
    return simplejson.dumps(data, use_decimal=True)


def loads(text: str | bytes):
    """JSON text with every number read as Decimal, so that an amount's exact digits can be compared."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def post_json(client, path: str, data, **headers):
    """POST `data` (a Python value, or raw text when a str) as application/json."""
    body = data if isinstance(data, str) else dumps(data)
    return client.post(path, data=body, content_type="application/json", headers=headers)


def payment_body(**overrides) -> dict:
    body = dict(SPECIFICATION_PAYMENT)
    for name, value in overrides.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The response is `status` in the one error format with `code`; `field` is among the details.

    Works for Django test responses and `requests` responses alike. Returns the error object.
    """
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = json.loads(response.content)
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], list), error
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}, detail
        assert isinstance(detail["field"], str) and isinstance(detail["message"], str), detail
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error
    return error
