"""What the events tests share: payments made through the services, and the published JSON Schemas."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from payments.services import payment_process, payment_validate
from pgi.events.models import OutboxEvent
from pgi.events.payloads import decimal_loads

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events"


def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)


SCHEMA_FOR_TOPIC_AND_KIND = {
    ("payment-events", "PAYMENT"): "payment-event.schema.json",
    ("payment-events", "REFUND"): "refund-event.schema.json",
    ("payment-events", "SETTLEMENT"): "settlement-event.schema.json",
    ("payment-notifications", "PAYMENT"): "payment-notification.schema.json",
    ("payment-notifications", "REFUND"): "payment-notification.schema.json",
}


def assert_valid(row: OutboxEvent) -> dict:
    """The row's body against its topic's schema; the body read back (amounts as Decimal)."""
    message = json.loads(row.body)  # what a consumer in any language reads: plain JSON
    name = SCHEMA_FOR_TOPIC_AND_KIND[(row.topic, row.event_type.split("_")[0])]
    errors = [error.message for error in validator(name).iter_errors(message)]
    assert errors == [], (row.event_type, errors)
    return decimal_loads(row.body)


def rows_for(payment_id: str, topic: str = "payment-events") -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(key=payment_id, topic=topic).order_by("id"))


def types_for(payment_id: str, topic: str = "payment-events") -> list[str]:
    return [row.event_type for row in rows_for(payment_id, topic)]


def processed(principal, *, amount="50.00", currency="USD", from_account="account123", capture=True):
    draft = payment_validate(
        principal=principal,
        amount=Decimal(amount),
        currency=currency,
        from_account=from_account,
        to_merchant=None,
        capture=capture,
    )
    return payment_process(draft=draft, principal=principal)


@pytest.fixture
def process(principal):
    def make(**kwargs):
        return processed(principal, **kwargs)

    return make
