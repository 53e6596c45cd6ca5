"""A `payment-requests` message read and checked: UTF-8, a JSON object, the REST API's payment body
(the same serializer, so the rules cannot drift) plus `requestId`. The format:
docs/09-events.md ("Payment requests") and docs/events/payment-request.schema.json.
"""

import re
from dataclasses import dataclass

from rest_framework import serializers

from payments.apis import PaymentInputSerializer
from pgi.api.parsers import DuplicateKey, loads_strict
from pgi.api.serializers import StrictCharField
from pgi.cards import REFUSAL_CODE, REFUSAL_MESSAGE, card_number_paths, has_card_number

REQUEST_ID_SHAPE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces, as Idempotency-Key


class Refused(Exception):
    """The message cannot be processed, now or ever: it goes to the dead-letter topic with `code`
    and `reason` in its headers. `request_id` when the message had a readable one."""

    def __init__(self, code: str, reason: str, *, request_id: str = ""):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.request_id = request_id


class RequestIdField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not REQUEST_ID_SHAPE.fullmatch(value):
            raise serializers.ValidationError("Must be 1 to 64 printable ASCII characters, without spaces.")
        return value


class PaymentRequestMessageSerializer(PaymentInputSerializer):
    requestId = RequestIdField(source="request_id")


@dataclass(frozen=True)
class PaymentRequestMessage:
    request_id: str
    # The payment's fields as the REST API's serializer returns them (from_account, to_merchant…).
    payment: dict


def _flat(errors, prefix: str = "") -> list[str]:
    """DRF's nested errors as `field: message` lines, fields named as the message names them."""
    if isinstance(errors, dict):
        return [line for name, value in errors.items() for line in _flat(value, f"{prefix}{name}.")]
    if isinstance(errors, list):
        return [line for value in errors for line in _flat(value, prefix)]
    field = prefix.rstrip(".")
    return [f"{field}: {errors}" if field and field != "non_field_errors" else str(errors)]


def message_read(value: bytes | None) -> PaymentRequestMessage:
    """The message checked as the REST API checks a payment body. Raises Refused with NOT_UTF8,
    NOT_JSON, NOT_AN_OBJECT, CARD_NUMBER_NOT_ACCEPTED (a card number anywhere in it, pgi.cards: the
    fields in the reason, never the number) or VALIDATION_ERROR (every field's problem in the reason)."""
    try:
        text = (value or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        if has_card_number((value or b"").decode("utf-8", "replace")):
            raise Refused(REFUSAL_CODE, f"The message holds a card number. {REFUSAL_MESSAGE}") from None
        raise Refused("NOT_UTF8", f"The message is not UTF-8 text: {exc}") from exc
    try:
        data = loads_strict(text)
    except ValueError as exc:
        if has_card_number(text):
            raise Refused(REFUSAL_CODE, f"The message holds a card number. {REFUSAL_MESSAGE}") from None
        if isinstance(exc, DuplicateKey):
            raise Refused("NOT_JSON", f"The message is not valid JSON: the key {exc.key} appears more than once.") from exc
        raise Refused("NOT_JSON", f"The message is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        if card_number_paths(data):
            raise Refused(REFUSAL_CODE, f"The message holds a card number. {REFUSAL_MESSAGE}")
        raise Refused("NOT_AN_OBJECT", "The message must be a JSON object.")
    sent_id = data.get("requestId")
    request_id = sent_id if isinstance(sent_id, str) and REQUEST_ID_SHAPE.fullmatch(sent_id) else ""
    paths = card_number_paths(data)
    if paths:
        request_id = "" if "requestId" in paths else request_id
        raise Refused(REFUSAL_CODE, f"{', '.join(paths)}: {REFUSAL_MESSAGE}", request_id=request_id)
    serializer = PaymentRequestMessageSerializer(data=data)
    if not serializer.is_valid():
        raise Refused("VALIDATION_ERROR", "; ".join(_flat(serializer.errors)), request_id=request_id)
    payment = dict(serializer.validated_data)
    return PaymentRequestMessage(request_id=payment.pop("request_id"), payment=payment)
