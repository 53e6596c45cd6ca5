"""The text of a published message: orjson's writing is simplejson's, byte for byte."""

from decimal import Decimal

import pytest
import simplejson
from hypothesis import given
from hypothesis import strategies as st

from payments.models import PaymentStatus
from pgi.events.models import OutboxEvent
from pgi.events.payloads import json_text, outbox_rows, payment_message
from tests.factories import PaymentFactory
from tests.json_values import json_values


def simplejson_text(message) -> str:
    return simplejson.dumps(message, use_decimal=True, ensure_ascii=False, separators=(",", ":"))


# Lone surrogates included: orjson refuses them, simplejson writes them.
_text = st.text(st.characters(exclude_categories=()), max_size=20)
_message = st.dictionaries(_text, json_values(_text), max_size=8)


@given(_message)
def test_the_text_is_simplejsons(message):
    assert json_text(message) == simplejson_text(message)


def test_amounts_and_text_as_published():
    message = {"amount": Decimal("50.00"), "who": "Zoë — ☃", "echo": "a\ud800b", "n": 3, "ok": True, "none": None}
    assert json_text(message) == (
        '{"amount":50.00,"who":"Zoë — ☃","echo":"a\ud800b","n":3,"ok":true,"none":null}'  # the surrogate as it came
    )


@pytest.mark.django_db
def test_the_payload_column_holds_the_published_text():
    payment = PaymentFactory(status=PaymentStatus.COMPLETED, amount=Decimal("12.50"))
    message = payment_message(payment=payment, from_status=PaymentStatus.PROCESSING, now=payment.status_changed_at)
    rows = outbox_rows(message, merchant_id=payment.merchant_id)
    OutboxEvent.objects.bulk_create(rows)
    for row in rows:
        stored = OutboxEvent.objects.get(pk=row.pk)
        assert stored.payload == simplejson.loads(row.body, use_decimal=True)
        assert stored.payload["details"]["amount"] == Decimal("12.50")
        assert stored.body == json_text(row.payload)
