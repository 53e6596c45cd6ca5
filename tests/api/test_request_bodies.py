"""What a request body may be, on every JSON POST: absent, or one JSON object read strictly."""

from decimal import Decimal

import pytest

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatus

from .helpers import PAYMENTS_URL, VALIDATE_URL, assert_error, dumps, payment_body, post_json

pytestmark = pytest.mark.django_db

NOT_AN_OBJECT = ["[]", "null", "false", "true", "0", "1", '""', '"x"', "[{}]"]


@pytest.fixture
def authorized_id(api) -> str:
    response = post_json(api, PAYMENTS_URL, payment_body(capture=False))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def assert_still_authorized(payment_id: str) -> None:
    payment = Payment.objects.get(pk=payment_id)
    assert payment.status == PaymentStatus.AUTHORIZED
    assert payment.captured_amount is None
    assert SimulatorCharge.objects.get(idempotency_key=payment_id).status == "authorized"


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
@pytest.mark.parametrize("operation", ["capture", "cancel"])
def test_capture_or_cancel_with_a_body_that_is_not_an_object_changes_nothing(api, authorized_id, operation, body):
    response = post_json(api, f"{PAYMENTS_URL}/{authorized_id}/{operation}", body)

    assert_error(response, 400, "VALIDATION_ERROR", field="")
    assert_still_authorized(authorized_id)


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
@pytest.mark.parametrize("url", [PAYMENTS_URL, VALIDATE_URL])
def test_create_or_validate_with_a_body_that_is_not_an_object_is_refused(api, url, body):
    response = post_json(api, url, body)

    assert_error(response, 400, "VALIDATION_ERROR", field="")
    assert not Payment.objects.exists()


def test_capture_without_a_body_takes_the_whole_amount(api, authorized_id):
    response = api.post(f"{PAYMENTS_URL}/{authorized_id}/capture")

    assert response.status_code == 200, response.content
    assert Payment.objects.get(pk=authorized_id).captured_amount == Decimal("50.00")


def test_capture_with_an_empty_json_body_takes_the_whole_amount(api, authorized_id):
    response = api.post(f"{PAYMENTS_URL}/{authorized_id}/capture", data="", content_type="application/json")

    assert response.status_code == 200, response.content
    assert Payment.objects.get(pk=authorized_id).status == PaymentStatus.COMPLETED


def test_capture_body_without_a_content_type_is_refused_not_ignored(api, authorized_id):
    response = api.generic("POST", f"{PAYMENTS_URL}/{authorized_id}/capture", data=b'{"amount": 1.00}', content_type="")

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_still_authorized(authorized_id)


def test_chunked_body_is_refused_with_411(api, authorized_id):
    # Django reads a chunked body (no Content-Length) as empty: that would capture everything.
    response = api.post(
        f"{PAYMENTS_URL}/{authorized_id}/capture",
        data=dumps({"amount": Decimal("1.00")}),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )

    assert_error(response, 411, "LENGTH_REQUIRED")
    assert_still_authorized(authorized_id)


DUPLICATES = [
    '{"amount": 1.00, "currency": "USD", "fromAccount": "account123", "amount": 1000000.00}',
    '{"amount": 1.00, "currency": "USD", "fromAccount": "account123", "metadata": {"order": "1", "order": "2"}}',
]


@pytest.mark.parametrize("body", DUPLICATES)
@pytest.mark.parametrize("url", [PAYMENTS_URL, VALIDATE_URL])
def test_duplicate_keys_at_any_depth_are_malformed_json_naming_the_key(api, url, body):
    response = post_json(api, url, body)

    error = assert_error(response, 400, "MALFORMED_JSON")
    assert '"amount"' in error["message"] or '"order"' in error["message"], error
    assert not Payment.objects.exists()


def test_duplicate_amount_in_a_capture_body_is_malformed_json(api, authorized_id):
    response = post_json(api, f"{PAYMENTS_URL}/{authorized_id}/capture", '{"amount": 1.00, "amount": 50.00}')

    error = assert_error(response, 400, "MALFORMED_JSON")
    assert '"amount"' in error["message"]
    assert_still_authorized(authorized_id)


@pytest.mark.parametrize("value", ["no", "false", "true", "0", "1", 0, 1, None, "", [], {}])
def test_capture_flag_must_be_a_json_boolean(api, value):
    response = post_json(api, PAYMENTS_URL, payment_body(capture=value))

    assert_error(response, 400, "VALIDATION_ERROR", field="capture")
    assert not Payment.objects.exists()


@pytest.mark.parametrize("field", ["currency", "fromAccount", "toMerchant", "reference", "description"])
@pytest.mark.parametrize("value", [123, Decimal("1.5"), True, ["x"], {"x": "y"}])
def test_string_fields_refuse_other_json_types(api, field, value):
    response = post_json(api, PAYMENTS_URL, payment_body(**{field: value}))

    assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert not Payment.objects.exists()


@pytest.mark.parametrize("value", [Decimal("123"), True])
def test_metadata_values_refuse_other_json_types(api, value):
    response = post_json(api, PAYMENTS_URL, payment_body(metadata={"order": value}))

    assert_error(response, 400, "VALIDATION_ERROR", field="metadata.order")
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("field", "limit"),
    [("toMerchant", 64), ("fromAccount", 64), ("currency", 3), ("reference", 64), ("description", 255)],
)
def test_every_string_field_has_a_length_bound(api, field, limit):
    response = post_json(api, PAYMENTS_URL, payment_body(**{field: "A" * (limit + 1)}))

    assert_error(response, 400, "VALIDATION_ERROR", field=field)


@pytest.mark.parametrize("field", ["currency", "fromAccount"])
def test_nul_in_currency_or_account_is_refused(api, field):
    response = post_json(api, PAYMENTS_URL, payment_body(**{field: "US\x00"}))

    assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert not Payment.objects.exists()


def test_text_is_kept_exactly_as_sent(api):
    sent = {"reference": " order 1 ", "description": "  two spaces  ", "metadata": {"note": " x "}}

    response = post_json(api, PAYMENTS_URL, payment_body(**sent))

    assert response.status_code == 201, response.content
    payment = Payment.objects.get()
    assert (payment.reference, payment.description, payment.metadata) == (" order 1 ", "  two spaces  ", {"note": " x "})


@pytest.mark.parametrize(("field", "value"), [("currency", " USD"), ("currency", "USD "), ("fromAccount", " account123")])
def test_codes_with_surrounding_spaces_are_refused_not_trimmed(api, field, value):
    response = post_json(api, PAYMENTS_URL, payment_body(**{field: value}))

    assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert not Payment.objects.exists()


HOSTILE_BODIES = {
    "lone surrogate key": '{"\\ud800": 1}',
    "lone surrogate key, twice": '{"\\ud800": 1, "\\ud800": 2}',
    "lone surrogate metadata key": '{"amount": 50.00, "currency": "USD", "fromAccount": "account123", '
    '"metadata": {"\\udfff": "x"}}',
    "600 levels deep": '{"z":' + "[" * 600 + "]" * 600 + "}",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "Idempotency-Key"])
@pytest.mark.parametrize("operation", ["create", "validate", "capture", "cancel"])
def test_bodies_no_text_can_hold_or_too_deep_are_malformed_json_and_store_nothing(
    api, authorized_id, operation, with_key, body
):
    from pgi.api.models import IdempotencyRecord

    url = {
        "create": PAYMENTS_URL,
        "validate": VALIDATE_URL,
        "capture": f"{PAYMENTS_URL}/{authorized_id}/capture",
        "cancel": f"{PAYMENTS_URL}/{authorized_id}/cancel",
    }[operation]
    headers = {"Idempotency-Key": f"hostile-{operation}"} if with_key else {}

    response = post_json(api, url, body, **headers)

    assert_error(response, 400, "MALFORMED_JSON")
    assert Payment.objects.count() == 1
    assert_still_authorized(authorized_id)
    assert not IdempotencyRecord.objects.filter(key__startswith="hostile-").exclude(response_status=400).exists()


OUT_OF_RANGE_AMOUNTS = [
    "1e1000000", "1E+999999999", "1e99999999999999999999", "1e-10000000", "0E+999999999", "-1e5000", "1e1001"
]


@pytest.mark.parametrize("amount", OUT_OF_RANGE_AMOUNTS)
@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "Idempotency-Key"])
@pytest.mark.parametrize("operation", ["create", "validate", "capture"])
def test_a_number_beyond_1e1000_is_a_validation_error_at_once_and_stores_nothing(
    api, authorized_id, operation, with_key, amount
):
    """A number spelled with a huge exponent is refused before anything writes its digits out
    (1E+999999999 is a billion of them): a 400, never a 500 nor a worker held for a minute."""
    url = {
        "create": PAYMENTS_URL,
        "validate": VALIDATE_URL,
        "capture": f"{PAYMENTS_URL}/{authorized_id}/capture",
    }[operation]
    body = f'{{"amount": {amount}, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}}'
    if operation == "capture":
        body = f'{{"amount": {amount}}}'
    headers = {"Idempotency-Key": f"range-{operation}"} if with_key else {}

    response = post_json(api, url, body, **headers)

    assert_error(response, 400, "VALIDATION_ERROR")
    assert "out of range" in response.json()["error"]["message"]
    assert Payment.objects.count() == 1
    assert_still_authorized(authorized_id)


def test_an_amount_of_1e400_is_still_refused_by_its_field():
    # Within the parser's bound: the amount field says what is wrong with it, as before.
    from pgi.api.parsers import loads_strict

    assert loads_strict('{"amount": 1e400}') == {"amount": Decimal("1e400")}


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1", "utf-16", "ascii"])
def test_a_body_in_another_charset_than_utf8_is_refused_and_stores_nothing(api, authorized_id, charset):
    body = '{"amount": 5.00, "currency": "USD", "fromAccount": "account123", "description": "café"}'
    response = api.post(PAYMENTS_URL, body.encode(), content_type=f"application/json; charset={charset}")

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert Payment.objects.count() == 1


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8"])
def test_a_body_labelled_utf8_is_read(api, charset):
    body = '{"amount": 5.00, "currency": "USD", "fromAccount": "account123", "description": "café 😀"}'
    response = api.post(PAYMENTS_URL, body.encode(), content_type=f"application/json; charset={charset}")

    assert response.status_code == 201, response.content
    assert Payment.objects.get(pk=response.json()["id"]).description == "café 😀"
