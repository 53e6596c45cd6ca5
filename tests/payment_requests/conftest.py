"""What the payment-requests tests share: messages as bank systems write them, and their schema."""

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "events" / "payment-request.schema.json"


def request_schema() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def request_text(**fields) -> str:
    """A valid message's JSON, the amount written as exact digits (json.dumps would need a float)."""
    body = {
        "requestId": fields.pop("requestId", f"tps-{uuid.uuid4().hex[:16]}"),
        "currency": "USD",
        "fromAccount": "account123",
        "toMerchant": "merchant456",
        **fields,
    }
    amount = fields.get("amount", "50.00")
    body.pop("amount", None)
    return json.dumps(body)[:-1] + f', "amount": {amount}}}'


def request_bytes(**fields) -> bytes:
    return request_text(**fields).encode()


@pytest.fixture
def bank_merchant(merchant):
    """merchant456, as the messages name it, with the simulator's default route."""
    return merchant
