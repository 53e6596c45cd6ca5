"""Card numbers are refused anywhere in a request, with 400 CARD_NUMBER_NOT_ACCEPTED, before anything
is stored: no payment, refund or endpoint, no Idempotency-Key record, nothing in the log, and the
answer names the field without echoing what it held."""

import logging

import pytest

from payments.models import Payment
from pgi.api.models import IdempotencyRecord
from pgi.webhooks.models import WebhookEndpoint
from refunds.models import Refund

from .helpers import PAYMENTS_URL, VALIDATE_URL, assert_error, payment_body, post_json

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"


def assert_refused(response, *fields):
    error = assert_error(response, 400, "CARD_NUMBER_NOT_ACCEPTED")
    assert [detail["field"] for detail in error["details"]] == list(fields)
    assert "4111" not in response.content.decode() and "1111 1111" not in response.content.decode()
    return error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"fromAccount": CARD_DIGITS}, "fromAccount"),
        ({"fromAccount": "4111-1111-1111-1111"}, "fromAccount"),
        ({"reference": f"order {CARD}"}, "reference"),
        ({"description": f"Paid by card {CARD} thanks"}, "description"),
        ({"metadata": {"note": CARD}}, "metadata.note"),
        ({"metadata": {CARD_DIGITS: "x"}}, "metadata.<card number>"),
        ({"unknownField": CARD_DIGITS}, "unknownField"),
        ({"description": "card 4111\u00a01111\u00a01111\u00a01111"}, "description"),
        ({"reference": "\uff14\uff11\uff11\uff11" + "\uff11" * 12}, "reference"),
        ({"metadata": {"note": "4111\u20131111\u20131111\u20131111"}}, "metadata.note"),
    ],
)
def test_a_payment_with_a_card_number_in_any_field_is_refused_and_nothing_is_stored(api, caplog, overrides, field):
    caplog.set_level(logging.DEBUG)
    response = post_json(api, PAYMENTS_URL, payment_body(**overrides), **{"Idempotency-Key": "card-1"})
    assert_refused(response, field)
    assert not Payment.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert CARD_DIGITS not in caplog.text and CARD not in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("key", [CARD_DIGITS, "5105-1051-0510-5100"])
def test_an_idempotency_key_holding_a_card_number_is_refused_and_nothing_is_stored(api, key):
    response = post_json(api, PAYMENTS_URL, payment_body(), **{"Idempotency-Key": key})
    assert_refused(response, "Idempotency-Key")
    assert "5105" not in response.content.decode()
    assert not Payment.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("account", ["DE74 2914 1777 6317 0669 07", "DE67 4391 5000 8063 6083 77"])
def test_a_printed_iban_whose_digit_groups_pass_luhn_still_passes(api, account):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=account, description=f"Refund to {account}"))
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_validate_refuses_a_card_number_too(api):
    assert_refused(post_json(api, VALIDATE_URL, payment_body(fromAccount=CARD)), "fromAccount")


@pytest.mark.django_db
def test_every_field_holding_one_is_named(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=CARD_DIGITS, description=CARD))
    assert_refused(response, "fromAccount", "description")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "account", ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "account123", "acct-4111-1111", "41111111111111110"]
)
def test_ibans_and_account_ids_still_pass(api, account):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount=account, description="order 2024-05-17 12345"))
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_a_card_number_in_the_query_string_is_refused(api):
    response = api.get(PAYMENTS_URL, {"reference": CARD_DIGITS})
    assert_refused(response, "reference")


@pytest.mark.django_db
def test_a_refund_reason_or_metadata_with_a_card_number_is_refused(api):
    payment = post_json(api, PAYMENTS_URL, payment_body()).json()
    url = f"{PAYMENTS_URL}/{payment['id']}/refunds"
    assert_refused(post_json(api, url, {"reason": f"card {CARD}"}), "reason")
    assert_refused(post_json(api, url, {"metadata": {"card": CARD_DIGITS}}), "metadata.card")
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_a_webhook_endpoint_description_with_a_card_number_is_refused(api, settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": True}
    body = {"url": "https://127.0.0.1/hooks", "eventTypes": ["*"], "description": f"card {CARD}"}
    assert_refused(post_json(api, "/v1/webhook-endpoints", body), "description")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_capture_body_with_a_card_number_is_refused_and_the_payment_stays_authorized(api):
    payment = post_json(api, PAYMENTS_URL, payment_body(capture=False)).json()
    response = post_json(api, f"{PAYMENTS_URL}/{payment['id']}/capture", {"note": CARD})
    assert_refused(response, "note")
    assert Payment.objects.get(pk=payment["id"]).status == "Authorized"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    [
        '{"fromAccount": "4111111111111111", broken',
        '{"4111111111111111": 1, "4111111111111111": 2}',  # a repeated key is named in MALFORMED_JSON
        '["4111 1111 1111 1111"]',
        '"4111111111111111"',
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_for_its_card_number_without_echoing_it(api, text):
    response = post_json(api, PAYMENTS_URL, text, **{"Idempotency-Key": "card-2"})
    assert_refused(response, "")
    assert not IdempotencyRecord.objects.exists()
