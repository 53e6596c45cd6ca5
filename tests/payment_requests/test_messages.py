"""A payment request message is read as the REST API reads a payment body, and the published JSON
Schema says the same thing the code does."""

import json
from decimal import Decimal

import pytest

from payment_requests.messages import Refused, message_read

from .conftest import request_bytes, request_schema, request_text


def test_a_valid_message_is_read_with_an_exact_amount_and_the_rest_apis_defaults():
    message = message_read(request_bytes(requestId="tps-0001", amount="10.10"))

    assert message.request_id == "tps-0001"
    assert message.payment["amount"] == Decimal("10.10") and isinstance(message.payment["amount"], Decimal)
    assert message.payment == {
        "amount": Decimal("10.10"),
        "currency": "USD",
        "from_account": "account123",
        "to_merchant": "merchant456",
        "reference": "",
        "description": "",
        "metadata": {},
        "capture": True,
    }
    assert list(request_schema().iter_errors(json.loads(request_text(amount="10.10")))) == []


def test_an_iban_is_checked_and_stored_compact_as_by_the_rest_api():
    message = message_read(request_bytes(fromAccount="DE89 3704 0044 0532 0130 00"))

    assert message.payment["from_account"] == "DE89370400440532013000"


REFUSED = [
    pytest.param(b"\xff\xfe{}", "NOT_UTF8", id="not-utf8"),
    pytest.param(b'{"requestId": "tps-1", "amount": 50.00,', "NOT_JSON", id="truncated-json"),
    pytest.param(b'{"requestId": "a", "requestId": "b"}', "NOT_JSON", id="duplicate-key"),
    pytest.param(b'{"requestId": "tps-1", "amount": NaN}', "NOT_JSON", id="nan"),
    pytest.param(b"[1, 2]", "NOT_AN_OBJECT", id="array"),
    pytest.param(b"", "NOT_JSON", id="empty"),
]


@pytest.mark.parametrize(("value", "code"), REFUSED)
def test_what_is_not_a_json_object_is_refused_with_its_code(value, code):
    with pytest.raises(Refused) as refused:
        message_read(value)

    assert refused.value.code == code


INVALID = [
    pytest.param({"requestId": None}, "requestId", id="no-request-id"),
    pytest.param({"requestId": "has space"}, "requestId", id="request-id-with-space"),
    pytest.param({"requestId": "x" * 65}, "requestId", id="request-id-too-long"),
    pytest.param({"amount": '"50.00"'}, "amount", id="amount-as-string"),
    pytest.param({"amount": "-5"}, "amount", id="negative-amount"),
    pytest.param({"currency": "usd"}, "currency", id="lower-case-currency"),
    pytest.param({"fromAccount": "!"}, "fromAccount", id="bad-account"),
    pytest.param({"capture": "yes"}, "capture", id="capture-as-string"),
    pytest.param({"callbackUrl": "https://x"}, "callbackUrl", id="unknown-field"),
]


@pytest.mark.parametrize(("change", "field"), INVALID)
def test_an_invalid_message_is_refused_by_the_code_and_by_the_schema(change, field):
    text = request_text(**{k: v for k, v in change.items() if v is not None})
    if change.get("requestId", "") is None:
        data = json.loads(text)
        del data["requestId"]
        text = json.dumps(data)

    with pytest.raises(Refused) as refused:
        message_read(text.encode())

    assert refused.value.code == "VALIDATION_ERROR"
    assert refused.value.reason.startswith(f"{field}: ") or f"; {field}: " in refused.value.reason
    assert list(request_schema().iter_errors(json.loads(text))) != []


def test_a_refusal_names_the_request_id_only_when_it_is_well_formed():
    with pytest.raises(Refused) as good_id:
        message_read(request_bytes(requestId="tps-0009", currency="usd"))
    with pytest.raises(Refused) as bad_id:
        message_read(request_bytes(requestId="bad\nid", currency="usd"))

    assert good_id.value.request_id == "tps-0009"
    assert bad_id.value.request_id == ""


def test_dead_letter_headers_keep_the_messages_own_then_say_why_and_where_in_at_most_1000_bytes():
    from types import SimpleNamespace

    from payment_requests.consumer import dead_letter_headers

    message = SimpleNamespace(
        headers=lambda: [("traceparent", b"00-abc")], topic=lambda: "payment-requests", partition=lambda: 2, offset=lambda: 41
    )

    headers = dead_letter_headers(message, Refused("VALIDATION_ERROR", "é" * 3000, request_id="tps-1"))

    assert [name for name, _ in headers] == [
        "traceparent", "error-code", "error-reason", "original-topic", "original-partition", "original-offset", "request-id"
    ]
    values = dict(headers)
    assert len(values["error-reason"]) <= 1000 and values["error-reason"].decode().endswith("é...")
    assert (values["original-partition"], values["original-offset"], values["request-id"]) == (b"2", b"41", b"tps-1")


CARD = "4111111111111111"


@pytest.mark.parametrize(
    "value, where",
    [
        (request_bytes(requestId="tps-c1", fromAccount=CARD), "fromAccount"),
        (request_bytes(requestId="tps-c2", description="card 4111 1111 1111 1111"), "description"),
        (request_bytes(requestId="tps-c3", metadata={"pan": "4111-1111-1111-1111"}), "metadata.pan"),
        (request_bytes(requestId="tps-c4", extra=CARD), "extra"),
        (b'{"fromAccount": "4111111111111111", not json', None),
        (b"\xff card 4111111111111111", None),
    ],
)
def test_a_card_number_anywhere_is_refused_with_its_own_code_and_the_reason_never_holds_it(value, where):
    from payment_requests.messages import Refused, message_read

    with pytest.raises(Refused) as refused:
        message_read(value)
    assert refused.value.code == "CARD_NUMBER_NOT_ACCEPTED"
    assert "4111" not in refused.value.reason and "4111" not in str(refused.value)
    if where:
        assert refused.value.reason.startswith(f"{where}: ")
        assert refused.value.request_id.startswith("tps-c")


def test_a_card_number_as_the_request_id_is_not_kept_as_the_request_id():
    from payment_requests.messages import Refused, message_read

    with pytest.raises(Refused) as refused:
        message_read(request_bytes(requestId=CARD))
    assert refused.value.code == "CARD_NUMBER_NOT_ACCEPTED" and refused.value.request_id == ""
