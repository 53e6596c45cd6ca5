"""Serializer building blocks shared by the API's input and output serializers."""

import copy
import re
from datetime import timezone as dt_timezone
from decimal import Context, Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from pgi.cards import mask
from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, is_payable_currency, quantize

MAX_INTEGER_DIGITS = AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES


class StrictCharField(serializers.CharField):
    """A JSON string only, kept exactly as sent, with a required max_length.

    DRF's CharField would turn 123 into "123" and strip surrounding spaces; it already refuses NUL
    characters, which PostgreSQL cannot store.
    """

    default_error_messages = {"invalid": "Must be a JSON string."}

    def __init__(self, **kwargs):
        assert kwargs.get("max_length") is not None, "every string input is bounded"
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's BooleanField reads "no", "0", 1 and others as booleans."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictInputSerializer(serializers.Serializer):
    # Refuses fields it does not know, so that a typo is an error rather than silently dropped.
    # Its fields must be strict building blocks (StrictCharField, StrictBooleanField, AmountField,
    # MetadataField, nested StrictInputSerializers): a lenient DRF field is a programming error.
    # (A comment, not a docstring: drf-spectacular would publish a docstring as every request
    # body's description in the OpenAPI document.)

    read_only_names: tuple[str, ...] = ()

    def get_fields(self):
        # DRF deep-copies the declared fields for every serializer made: each field built anew from
        # its arguments, 3.5 % of a payment's instructions (bench/README.md). A field with no fields of its
        # own is copied shallowly: binding it (bind()) sets attributes of the copy only, and nothing
        # changes what it shares with the declared one (its arguments, validators, messages). Fields
        # with children (lists, dicts, nested serializers) bind their children: those are deep-copied.
        fields = {
            name: copy.deepcopy(field) if hasattr(field, "child") or hasattr(field, "_declared_fields") else copy.copy(field)
            for name, field in self._declared_fields.items()
        }
        for name, field in fields.items():
            assert isinstance(field, STRICT_INPUT_FIELDS), (
                f"{type(self).__name__}.{name}: {type(field).__name__} is not a strict input field"
            )
        return fields

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, dict):
            for name in data.keys() - self.fields.keys():
                errors[name] = ["This field is read-only."] if name in self.read_only_names else ["Unknown field."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                errors = {**exc.detail, **errors}
            else:
                raise
        if errors:
            raise serializers.ValidationError(errors)
        return value


# JSON numbers read as Decimal: `format: decimal`. The bounds are the storage's; each currency's own
# digits (2 for USD, 0 for JPY, 3 for KWD) are checked beyond them.
@extend_schema_field(
    {
        "type": "number",
        "format": "decimal",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10**MAX_INTEGER_DIGITS,
        "exclusiveMaximum": True,
        "example": 50.00,
        "description": f"Exact decimal amount, greater than zero, with at most {MAX_INTEGER_DIGITS} digits "
        f"before the point and the currency's digits after it (at most {AMOUNT_DECIMAL_PLACES}).",
    }
)
class AmountField(serializers.Field):
    """A JSON number read as Decimal (the parser never makes floats), written back exactly."""

    default_error_messages = {
        "invalid": "Must be a JSON number.",
        "positive": "Must be greater than zero.",
        "too_large": f"Must have at most {MAX_INTEGER_DIGITS} digits before the decimal point.",
        "too_precise": "Has more decimal places than the currency allows.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, Decimal) or not data.is_finite():
            self.fail("invalid")
        if data <= 0:
            self.fail("positive")
        # With as many digits of precision as the number has, normalize only drops trailing zeros:
        # the default context (28 digits) would round 10.00999999999999999999999999999 to 10.01.
        normalized = data.normalize(Context(prec=max(len(data.as_tuple().digits), 1)))
        sign, digits, exponent = normalized.as_tuple()
        if len(digits) + exponent > MAX_INTEGER_DIGITS:
            self.fail("too_large")
        if -exponent > AMOUNT_DECIMAL_PLACES:
            # Currency precision is checked later with a clearer message; this bound protects storage.
            self.fail("too_precise")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "type": "number",
        "format": "decimal",
        "minimum": 0,
        "example": 50.00,
        "description": "Exact decimal amount with the currency's digits.",
    }
)
class CurrencyAmountField(AmountField):
    """An amount written with its payment's currency digits: 50.00 USD, 500 JPY, 1.500 KWD."""

    def get_attribute(self, instance):
        value = super().get_attribute(instance)
        return None if value is None else quantize(value, instance.currency)


@extend_schema_field({"type": "string", "pattern": "^[A-Z]{3}$", "example": "USD"})
class CurrencyField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("help_text", "ISO 4217 code, upper case (USD, JPY, KWD).")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not is_payable_currency(value):
            raise serializers.ValidationError("Not an ISO 4217 currency code (upper case, e.g. USD).")
        return value


IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")
# Other account ids: a gateway's token for the payer (a Stripe PaymentMethod id, an Adyen
# `<shopperReference>:<storedPaymentMethodId>`), a bank's internal account number.
ACCOUNT_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$")
# What the schema tells clients: either shape, an IBAN in either case with spaces anywhere (written in
# groups). Its checksum is checked beyond the pattern. tests/api/test_account_field.py holds the field to it.
ACCOUNT_PATTERN = (
    r"^(?: *[A-Za-z] *[A-Za-z] *[0-9] *[0-9](?: *[A-Za-z0-9]){10,30} *|[A-Za-z0-9][A-Za-z0-9._:-]{2,63})$"
)


@extend_schema_field({"type": "string", "pattern": ACCOUNT_PATTERN, "maxLength": 64, "example": "account123"})
class AccountField(StrictCharField):
    """A bank account identifier: an IBAN (checksum checked, stored compact) or another account id."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault(
            "help_text",
            "IBAN (checked) or account id: 3 to 64 letters, digits, '.', '_', ':' or '-' "
            "(for Stripe a PaymentMethod id, for Adyen `<shopperReference>:<storedPaymentMethodId>`).",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        compact = value.replace(" ", "").upper()
        if compact.isascii() and IBAN_SHAPE.fullmatch(compact):  # ("ß".upper() is "SS")
            try:
                return IBAN(compact).compact
            except SchwiftyException as exc:
                raise serializers.ValidationError(f"Not a valid IBAN: {exc}") from exc
        if not ACCOUNT_SHAPE.fullmatch(value):
            raise serializers.ValidationError(
                "Must be an IBAN or 3 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit."
            )
        return value


METADATA_MAX_KEYS = 20


@extend_schema_field(
    {"type": "object", "maxProperties": METADATA_MAX_KEYS, "additionalProperties": {"type": "string", "maxLength": 500}}
)
class MetadataField(serializers.DictField):
    """Free-form string pairs for the merchant's own use."""

    MAX_KEYS = METADATA_MAX_KEYS

    def __init__(self, **kwargs):
        kwargs.setdefault("child", StrictCharField(max_length=500, allow_blank=True))
        kwargs.setdefault("help_text", f"Up to {self.MAX_KEYS} string keys (40 characters) with string values (500).")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > self.MAX_KEYS:
            raise serializers.ValidationError(f"At most {self.MAX_KEYS} keys.")
        for key in value:
            if not key or len(key) > 40 or "\x00" in key:
                raise serializers.ValidationError("Keys must be 1 to 40 characters with no NUL.")
        return value


class StrictListField(serializers.ListField):
    """A JSON array only (DRF's ListField also takes a form's repeated values), of strict items,
    with a required max_length."""

    default_error_messages = {"not_a_list": "Must be a JSON array."}

    def __init__(self, **kwargs):
        assert kwargs.get("max_length") is not None, "every list input is bounded"
        assert isinstance(kwargs.get("child"), STRICT_INPUT_FIELDS), "its items are strict fields"
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


# The input fields that read only their own JSON type; StrictInputSerializer accepts no others.
STRICT_INPUT_FIELDS = (
    StrictCharField, StrictBooleanField, AmountField, MetadataField, StrictInputSerializer, StrictListField
)


class UtcDateTimeField(serializers.DateTimeField):
    """Output only: DRF's ISO 8601 text in UTC with a Z, as DateTimeField writes it in PGI (TIME_ZONE
    is UTC and no request activates another), without looking the current time zone up for every
    value: a page of 50 payments writes 200 of them."""

    def to_representation(self, value):
        if not value or value.tzinfo is None or api_settings.DATETIME_FORMAT != ISO_8601:
            return super().to_representation(value)
        text = value.astimezone(dt_timezone.utc).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text


_UTC_DATETIME = UtcDateTimeField()


def utc_text(value) -> str | None:
    """A datetime as UtcDateTimeField writes it (None stays None), for answers written without
    a serializer's fields (payments.representation). A time already in UTC (as PGI reads them from
    PostgreSQL) needs no conversion: its ISO text ends in +00:00."""
    if value is None:
        return None
    text = value.isoformat()
    if text.endswith("+00:00") and api_settings.DATETIME_FORMAT == ISO_8601:
        return text[:-6] + "Z"
    return _UTC_DATETIME.to_representation(value)


class AccountOutputField(serializers.CharField):
    """Output only: an account identifier, whole, or masked to its last four characters (`****3000`,
    pgi.cards.mask) when the serializer's context has `mask_accounts` (lists)."""

    def to_representation(self, value):
        text = super().to_representation(value)
        return mask(text) if self.context.get("mask_accounts") else text


class BlankAsNullCharField(serializers.CharField):
    """Output only: an empty string is written as null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value or None


class ErrorDetailSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The input field at fault, dotted for nested ones; empty for the whole request.")
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable UPPER_SNAKE code, e.g. VALIDATION_ERROR.")
    message = serializers.CharField()
    details = ErrorDetailSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


# A page of CreatedCursorPagination; a list's own page serializer adds `results`. No docstring: the
# schema would take it as every page's description.
class PageSerializer(serializers.Serializer):
    next = serializers.URLField(
        allow_null=True,
        help_text="URL of the next (older) page, with the same filters and limit; null on the last. "
        "Follow it as given.",
    )
    previous = serializers.URLField(
        allow_null=True, help_text="URL of the previous (newer) page, with the same filters and limit."
    )


def input_once(request, serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    """The request body checked once per request: an Idempotency-Key's `meaning` and the view share it."""
    if not hasattr(request, "_checked_inputs"):
        request._checked_inputs = {}
    checked = request._checked_inputs
    if serializer_class not in checked:
        checked[serializer_class] = serializer_class(data=request.data)
        checked[serializer_class].is_valid()
    return checked[serializer_class]
