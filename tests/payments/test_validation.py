"""POST /v1/payments refuses bad input with a clear error in the one format, and writes nothing."""

from decimal import Decimal

import pytest

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatusChange
from pgi.merchants.models import MerchantCurrency

from ..api.helpers import PAYMENTS_URL, assert_error, dumps, payment_body, post_json

pytestmark = pytest.mark.django_db


def assert_nothing_written():
    assert not Payment.objects.exists()
    assert not PaymentStatusChange.objects.exists()
    assert not SimulatorCharge.objects.exists()


@pytest.mark.parametrize(
    ("raw_amount", "message"),
    [
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-1", "greater than zero"),
        ("-50.00", "greater than zero"),
        ('"50.00"', "JSON number"),
        ("true", "JSON number"),
        ("false", "JSON number"),
        ("null", "null"),
        ("1e400", "digits before the decimal point"),
        ("[50]", "JSON number"),
        ('{"value": 50}', "JSON number"),
    ],
)
def test_invalid_amount_is_a_validation_error_on_amount(api, raw_amount, message):
    body = f'{{"amount": {raw_amount}, "currency": "USD", "fromAccount": "account123"}}'

    response = post_json(api, PAYMENTS_URL, body)

    error = assert_error(response, 400, "VALIDATION_ERROR", field="amount")
    assert message in " ".join(d["message"] for d in error["details"])
    assert_nothing_written()


@pytest.mark.parametrize("raw_amount", ["10.00999999999999999999999999999", "1.00000000000000000000000000001", "50.001"])
def test_an_amount_with_more_digits_than_the_currency_is_refused_never_rounded(api, raw_amount):
    body = f'{{"amount": {raw_amount}, "currency": "USD", "fromAccount": "account123"}}'

    response = post_json(api, PAYMENTS_URL, body)

    assert_error(response, 400, "VALIDATION_ERROR", field="amount")
    assert_nothing_written()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number_literals_are_malformed_json(api, constant):
    body = f'{{"amount": {constant}, "currency": "USD", "fromAccount": "account123"}}'

    response = post_json(api, PAYMENTS_URL, body)

    assert_error(response, 400, "MALFORMED_JSON")
    assert_nothing_written()


def test_missing_required_fields_are_each_named(api):
    response = post_json(api, PAYMENTS_URL, {})

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert {d["field"] for d in error["details"]} == {"amount", "currency", "fromAccount"}
    assert_nothing_written()


def test_amount_over_the_merchant_limit_is_refused(api, merchant):
    MerchantCurrency.objects.filter(merchant=merchant, currency="USD").update(max_amount=Decimal("1000"))

    response = post_json(api, PAYMENTS_URL, payment_body(amount=Decimal("1000.01")))

    error = assert_error(response, 422, "AMOUNT_OVER_LIMIT", field="amount")
    assert "1000.00 USD" in error["details"][0]["message"]
    assert_nothing_written()


def test_amount_equal_to_the_merchant_limit_is_accepted(api, merchant):
    MerchantCurrency.objects.filter(merchant=merchant, currency="USD").update(max_amount=Decimal("1000"))

    response = post_json(api, PAYMENTS_URL, payment_body(amount=Decimal("1000.00")))

    assert response.status_code == 201, response.content


def test_currency_not_enabled_for_the_merchant_is_refused(api):
    response = post_json(api, PAYMENTS_URL, payment_body(currency="GBP"))

    error = assert_error(response, 422, "CURRENCY_NOT_ENABLED", field="currency")
    assert "USD" in error["details"][0]["message"]
    assert_nothing_written()


@pytest.mark.parametrize("currency", ["usd", "Usd", "ABC", "XAU", "US", "USDX", "", 840, None])
def test_unknown_or_lowercase_currency_is_a_validation_error(api, currency):
    response = post_json(api, PAYMENTS_URL, payment_body(currency=currency))

    assert_error(response, 400, "VALIDATION_ERROR", field="currency")
    assert_nothing_written()


@pytest.mark.parametrize(
    "account",
    [
        "ab", "a" * 65, ":account", "account 123", "-account", "acc/123", "acc;123", "ñandú123", "", 12345678,
        "acc\x00123",
        # A pattern's `$` also matches before a last newline: the whole value must match.
        "acct-0002\n", "abc\n", "GB82WEST12345698765432\n",
    ],
)
def test_badly_formed_account_is_refused(api, account):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=account))

    assert_error(response, 400, "VALIDATION_ERROR", field="fromAccount")
    assert_nothing_written()


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("de89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("DE89370400440532013000", "DE89370400440532013000"),
    ],
)
def test_valid_iban_is_accepted_and_stored_compact(api, sent, stored):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=sent))

    assert response.status_code == 201, response.content
    assert response.json()["fromAccount"] == stored
    assert Payment.objects.get().from_account == stored


@pytest.mark.parametrize("iban", ["GB82WEST12345698765433", "DE89370400440532013001", "GB00WEST12345698765432"])
def test_iban_with_a_bad_checksum_is_refused(api, iban):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=iban))

    error = assert_error(response, 400, "VALIDATION_ERROR", field="fromAccount")
    assert "IBAN" in error["details"][0]["message"]
    assert_nothing_written()


@pytest.mark.parametrize(
    ("field", "limit"),
    [("reference", 64), ("description", 255)],
)
def test_strings_longer_than_their_limit_are_refused(api, field, limit):
    at_limit = post_json(api, PAYMENTS_URL, payment_body(**{field: "x" * limit}))
    assert at_limit.status_code == 201, at_limit.content

    response = post_json(api, PAYMENTS_URL, payment_body(**{field: "x" * (limit + 1)}))

    assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert Payment.objects.count() == 1


def test_unknown_fields_are_refused_by_name(api):
    response = post_json(api, PAYMENTS_URL, payment_body(amout=Decimal("5"), callbackUrl="https://x.example"))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert {d["field"] for d in error["details"]} == {"amout", "callbackUrl"}
    assert all(d["message"] == "Unknown field." for d in error["details"])
    assert_nothing_written()


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "pay_mine"), ("status", "Completed"), ("timestamp", "2024-05-17T12:34:56Z"), ("gatewayReference", "x")],
)
def test_read_only_fields_cannot_be_sent(api, field, value):
    response = post_json(api, PAYMENTS_URL, payment_body(**{field: value}))

    error = assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert "read-only" in error["details"][0]["message"]
    assert_nothing_written()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"description": "pay\x00ment"}, "description"),
        ({"reference": "ref\x00"}, "reference"),
        ({"toMerchant": "merchant456\x00"}, "toMerchant"),
        ({"metadata": {"order": "12\x003"}}, "metadata"),
        ({"metadata": {"ord\x00er": "123"}}, "metadata"),
    ],
)
def test_nul_bytes_in_strings_are_refused(api, overrides, field):
    response = post_json(api, PAYMENTS_URL, payment_body(**overrides))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert any(d["field"].split(".")[0] == field for d in error["details"]), error
    assert_nothing_written()


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(21)},
        {"k" * 41: "v"},
        {"": "v"},
        {"order": {"nested": "x"}},
        {"order": 123},
        {"order": "x" * 501},
        ["order", "123"],
        "order=123",
    ],
)
def test_metadata_outside_its_shape_is_refused(api, metadata):
    response = post_json(api, PAYMENTS_URL, payment_body(metadata=metadata))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert all(d["field"].startswith("metadata") for d in error["details"]), error
    assert_nothing_written()


def test_metadata_with_twenty_string_pairs_is_kept_as_sent(api):
    metadata = {f"key{i}": f"value {i}" for i in range(20)}

    response = post_json(api, PAYMENTS_URL, payment_body(metadata=metadata))

    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == metadata
    assert Payment.objects.get().metadata == metadata


@pytest.mark.parametrize(
    "body",
    ['{"amount": 50.00, "currency": "USD"', "{'amount': 50}", '{"amount": 50.00,}', "amount=50", "\x00", '{"a":1}{}'],
)
def test_malformed_json_is_refused(api, body):
    response = post_json(api, PAYMENTS_URL, body)

    assert_error(response, 400, "MALFORMED_JSON")
    assert_nothing_written()


def test_body_in_another_charset_than_declared_is_malformed(api):
    response = api.post(PAYMENTS_URL, data=b'{"description": "\xff"}', content_type="application/json")

    assert_error(response, 400, "MALFORMED_JSON")


@pytest.mark.parametrize("body", ["[]", '[{"amount": 50.00, "currency": "USD", "fromAccount": "account123"}]', '"x"', "5"])
def test_json_that_is_not_an_object_is_refused(api, body):
    response = post_json(api, PAYMENTS_URL, body)

    assert_error(response, 400, "VALIDATION_ERROR")
    assert_nothing_written()


def test_empty_body_is_refused(api):
    response = api.post(PAYMENTS_URL, data="", content_type="application/json")

    assert_error(response, 400, "VALIDATION_ERROR", field="amount")
    assert_nothing_written()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"amount": 50.00, "currency": "USD", "fromAccount": "account123"}'),
        ("application/x-www-form-urlencoded", "amount=50.00&currency=USD&fromAccount=account123"),
        ("multipart/form-data; boundary=xyz", '--xyz\r\nContent-Disposition: form-data; name="amount"\r\n\r\n50\r\n--xyz--'),
        ("application/xml", "<payment><amount>50.00</amount></payment>"),
    ],
)
def test_body_that_is_not_json_is_unsupported_media_type(api, content_type, body):
    response = api.post(PAYMENTS_URL, data=body, content_type=content_type)

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_nothing_written()


def test_platform_key_must_name_the_merchant(platform_api, merchant):
    response = post_json(platform_api, PAYMENTS_URL, payment_body(toMerchant=...))

    assert_error(response, 400, "VALIDATION_ERROR", field="toMerchant")
    assert_nothing_written()


def test_platform_key_naming_an_unknown_merchant_is_refused(platform_api, merchant):
    response = post_json(platform_api, PAYMENTS_URL, payment_body(toMerchant="nobody"))

    assert_error(response, 422, "UNKNOWN_MERCHANT", field="toMerchant")
    assert_nothing_written()


def test_platform_key_naming_an_inactive_merchant_is_refused(platform_api, merchant):
    merchant.is_active = False
    merchant.save()

    response = post_json(platform_api, PAYMENTS_URL, payment_body())

    assert_error(response, 422, "MERCHANT_INACTIVE", field="toMerchant")
    assert_nothing_written()


def test_deeply_nested_json_is_malformed_not_a_crash(api):
    depth = 100_000
    body = '{"amount": 50.00, "currency": "USD", "fromAccount": "account123", "metadata": ' + "[" * depth + "]" * depth + "}"

    response = post_json(api, PAYMENTS_URL, body)

    assert_error(response, 400, "MALFORMED_JSON")
    assert_nothing_written()


def test_body_larger_than_the_upload_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    response = post_json(api, PAYMENTS_URL, payment_body(description="x" * 200, metadata={"k": "v" * 400} | {f"k{i}": "v" * 100 for i in range(19)}))

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert_nothing_written()


def test_body_just_under_the_upload_limit_is_read(api, settings):
    body = dumps(payment_body(description="x" * 100))
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body.encode())

    response = post_json(api, PAYMENTS_URL, body)

    assert response.status_code == 201, response.content


def test_a_compressed_body_is_unsupported_media_type_not_malformed(api):
    import gzip

    body = gzip.compress(dumps(payment_body()).encode())

    response = api.post(PAYMENTS_URL, data=body, content_type="application/json", headers={"Content-Encoding": "gzip"})

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_nothing_written()
