"""Every error under /v1 uses `{"error": {"code", "message", "details"}}`, whoever raises it."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.utils import timezone

from payments import selectors
from payments.models import Payment
from pgi.api.idempotency import request_fingerprint
from pgi.api.models import IdempotencyRecord
from pgi.merchants.services import api_key_create, api_key_revoke

from ..conftest import client_for
from ..factories import PaymentFactory
from .helpers import (
    PAYMENTS_URL,
    VALIDATE_URL,
    assert_error,
    dumps,
    loads,
    payment_body,
    post_json,
)

pytestmark = pytest.mark.django_db

PLAIN_URLS = "tests.api.urls_with_plain_django_view"


# --- 400 -----------------------------------------------------------------------------------------


def test_validation_error_lists_each_field_with_its_message(api):
    response = post_json(api, PAYMENTS_URL, payment_body(amount=-1, currency="usd"))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert {d["field"] for d in error["details"]} == {"amount", "currency"}


def test_malformed_idempotency_key_is_a_validation_error_on_the_header(api):
    response = post_json(api, PAYMENTS_URL, payment_body(), **{"Idempotency-Key": "has spaces in it"})

    assert_error(response, 400, "VALIDATION_ERROR", field="Idempotency-Key")
    assert not Payment.objects.exists()


def test_request_to_a_host_not_allowed_is_a_json_400(merchant_key):
    response = Client().get(PAYMENTS_URL, headers={"Authorization": f"Bearer {merchant_key}", "Host": "evil.example"})

    assert_error(response, 400, "BAD_REQUEST")


# --- 401 -----------------------------------------------------------------------------------------


def test_missing_authorization_header_is_401_with_the_bearer_challenge(merchant):
    response = post_json(Client(), PAYMENTS_URL, payment_body())

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pgi"'
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token {key}", "{key}", "Bearer", "Bearer ", "bearer-{key}"],
)
def test_wrong_authorization_scheme_is_401(merchant_key, authorization):
    client = Client(headers={"Authorization": authorization.format(key=merchant_key)})

    response = client.get(PAYMENTS_URL)

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pgi"'


def test_bearer_scheme_is_case_insensitive(merchant_key):
    response = Client(headers={"Authorization": f"bearer {merchant_key}"}).get(PAYMENTS_URL)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "pgi_0123456789ab_notarealsecret",
        "not-a-key",
        "pgi__secret",
        "pgi_short_secret",
        "pgi_\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00_secret",
        "pgi_zzzzzzzzzzzz_secret",
    ],
)
def test_unknown_or_malformed_key_is_401(merchant, token):
    response = client_for(token).get(PAYMENTS_URL)

    assert_error(response, 401, "UNAUTHENTICATED")


def test_known_prefix_with_a_wrong_secret_is_401(merchant_key):
    _, prefix, secret = merchant_key.split("_", 2)
    forged = f"pgi_{prefix}_{'A' * len(secret)}"

    response = client_for(forged).get(PAYMENTS_URL)

    assert_error(response, 401, "UNAUTHENTICATED")


def test_revoked_key_is_401(merchant):
    api_key, full_key = api_key_create(name="old", merchant=merchant)
    assert client_for(full_key).get(PAYMENTS_URL).status_code == 200
    api_key_revoke(api_key=api_key)

    response = client_for(full_key).get(PAYMENTS_URL)

    assert_error(response, 401, "UNAUTHENTICATED")


def test_key_of_an_inactive_merchant_is_401(merchant, merchant_key):
    merchant.is_active = False
    merchant.save()

    response = post_json(client_for(merchant_key), PAYMENTS_URL, payment_body())

    assert_error(response, 401, "UNAUTHENTICATED")
    assert not Payment.objects.exists()


# --- 403, 404 ------------------------------------------------------------------------------------


def test_merchant_key_naming_another_merchant_is_403(api, other_merchant):
    response = post_json(api, PAYMENTS_URL, payment_body(toMerchant=other_merchant.code))

    assert_error(response, 403, "MERCHANT_NOT_ALLOWED", field="toMerchant")
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "path", ["/v1/nothing", "/v1//", "/v1/payments/", "/v1/payments/pay_x/status/more", "/v1/refundz"]
)
def test_unknown_url_under_v1_is_a_json_404(api, path):
    response = api.get(path)

    assert_error(response, 404, "NOT_FOUND")
    assert response.headers["X-Frame-Options"] == "DENY"  # headers of the replaced page are kept


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/v1/payments/", "/v1/payments"),
        ("/v1/payments/validate/", "/v1/payments/validate"),
        ("/v1/payments/pay_06f3k1v2d8m4q9r7t5w0x2y4z6/", "/v1/payments/pay_06f3k1v2d8m4q9r7t5w0x2y4z6"),
        ("/v1/payments/pay_06f3k1v2d8m4q9r7t5w0x2y4z6/status//", "/v1/payments/pay_06f3k1v2d8m4q9r7t5w0x2y4z6/status"),
        ("/v1/schema/", "/v1/schema"),
    ],
)
def test_a_trailing_slash_is_a_404_that_names_the_url_without_it(api, path, meant):
    for response in (api.get(path), post_json(api, path, payment_body())):
        error = assert_error(response, 404, "NOT_FOUND")
        assert error["message"].endswith(f": {meant}"), error

    assert not Payment.objects.exists()


@pytest.mark.parametrize("path", ["/v1/nothing/", "/v1/payments/pay_x/status/more/"])
def test_a_trailing_slash_on_no_url_of_the_api_hints_at_nothing(api, path):
    error = assert_error(api.get(path), 404, "NOT_FOUND")

    assert "/v1" not in error["message"]


def test_unknown_url_under_v1_is_404_even_without_a_key(db):
    assert_error(Client().post("/v1/nothing", data="{}", content_type="application/json"), 404, "NOT_FOUND")


MAX_URL_LENGTH = 4096  # path and query string, as docs/04 states


@pytest.mark.parametrize("path", ["//v1/payments", "///v1/payments/validate", "/./v1/payments", "/V1/payments", "//v1"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_other_spellings_of_api_paths_are_a_json_404(api, method, path):
    # With its host spelled out, so that the test client does not read `//v1` as a host name.
    response = getattr(api, method)("http://testserver" + path)

    assert_error(response, 404, "NOT_FOUND")
    assert not Payment.objects.exists()


def test_url_up_to_the_documented_length_is_served(api):
    path = PAYMENTS_URL + "?reference="
    response = api.get(path + "r" * (MAX_URL_LENGTH - len(path)))

    # Read as a reference longer than any stored one: a validation error, not a 414.
    assert_error(response, 400, "VALIDATION_ERROR", field="reference")


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("tail", ["?reference=", "/", "/pay_"])
def test_url_longer_than_the_documented_length_is_414_in_the_error_format(api, method, tail):
    path = PAYMENTS_URL + tail
    response = getattr(api, method)(path + "x" * (MAX_URL_LENGTH + 1 - len(path)))

    assert_error(response, 414, "URI_TOO_LONG")
    assert not Payment.objects.exists()


def test_another_merchants_payment_is_404_exactly_like_an_unknown_one(api, other_merchant):
    theirs = PaymentFactory(merchant=other_merchant)

    for path in (f"{PAYMENTS_URL}/{theirs.id}", f"{PAYMENTS_URL}/{theirs.id}/status"):
        hidden = assert_error(api.get(path), 404, "PAYMENT_NOT_FOUND")
        unknown = assert_error(api.get(path.replace(theirs.id, "pay_00000000000000000000000000")), 404, "PAYMENT_NOT_FOUND")
        assert hidden["message"].replace(theirs.id, "?") == unknown["message"].replace("pay_00000000000000000000000000", "?")


@pytest.mark.parametrize("payment_id", ["pay_%00", "%00", "pay_" + "x" * 300, "pay_%C3%A9"])
def test_payment_id_that_cannot_exist_is_404(api, payment_id):
    assert_error(api.get(f"{PAYMENTS_URL}/{payment_id}"), 404, "PAYMENT_NOT_FOUND")
    assert_error(api.get(f"{PAYMENTS_URL}/{payment_id}/status"), 404, "PAYMENT_NOT_FOUND")


# --- 405, 406, 409, 415, 422 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/v1/payments/{id}", {"GET"}),
        ("put", "/v1/payments/{id}", {"GET"}),
        ("patch", "/v1/payments/{id}", {"GET"}),
        ("get", "/v1/payments/validate", {"POST"}),
        ("delete", "/v1/payments", {"GET", "POST"}),
        ("post", "/v1/payments/{id}/status", {"GET"}),
    ],
)
def test_method_not_allowed_is_405_with_allow(api, merchant, method, path, allowed):
    payment = PaymentFactory(merchant=merchant)

    response = getattr(api, method)(path.format(id=payment.id))

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert Payment.objects.get() == payment


def test_accept_header_the_api_cannot_satisfy_is_406_in_json(api):
    response = api.get(PAYMENTS_URL, HTTP_ACCEPT="text/html")

    assert_error(response, 406, "NOT_ACCEPTABLE")


def test_request_while_the_same_idempotency_key_is_in_flight_is_409(api, merchant):
    body = payment_body()
    IdempotencyRecord.objects.create(  # what the first request leaves while it runs
        scope=f"m:{merchant.pk}",
        key="order-1",
        request_hash=request_fingerprint("POST", PAYMENTS_URL, loads(dumps(body))),
        method="POST",
        path=PAYMENTS_URL,
        lease_expires_at=timezone.now() + timedelta(seconds=15),
        expires_at=timezone.now() + timedelta(hours=1),
    )

    response = post_json(api, PAYMENTS_URL, body, **{"Idempotency-Key": "order-1"})

    assert_error(response, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert 1 <= int(response.headers["Retry-After"]) <= 15
    assert not Payment.objects.exists()


def test_unsupported_media_type_is_415_on_every_post(api):
    for path in (PAYMENTS_URL, VALIDATE_URL):
        assert_error(api.post(path, data="amount=5", content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_unsupported_media_type_says_to_send_application_json(api, content_type):
    response = api.post(PAYMENTS_URL, data="amount=5", content_type=content_type)

    error = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in error["message"]
    assert not Payment.objects.exists()


def test_business_rule_refusal_is_422(api):
    assert_error(post_json(api, PAYMENTS_URL, payment_body(currency="CHF")), 422, "CURRENCY_NOT_ENABLED")


# --- 429 -----------------------------------------------------------------------------------------


def test_too_many_requests_for_one_key_is_429_with_retry_after(settings, merchant):
    settings.PGI_API_RATE = "3/min"
    _, full_key = api_key_create(name="burst", merchant=merchant)
    client = client_for(full_key)

    statuses = [client.get(PAYMENTS_URL).status_code for _ in range(3)]
    response = client.get(PAYMENTS_URL)

    assert statuses == [200, 200, 200]
    assert_error(response, 429, "RATE_LIMITED")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_rate_limit_is_counted_per_key(settings, merchant):
    settings.PGI_API_RATE = "2/min"
    _, first = api_key_create(name="first", merchant=merchant)
    _, second = api_key_create(name="second", merchant=merchant)
    for _ in range(2):
        client_for(first).get(PAYMENTS_URL)

    assert client_for(first).get(PAYMENTS_URL).status_code == 429
    assert client_for(second).get(PAYMENTS_URL).status_code == 200


# --- 500 -----------------------------------------------------------------------------------------


def test_unexpected_error_in_a_view_is_a_json_500_without_internals(api, merchant):
    payment = PaymentFactory(merchant=merchant)
    with mock.patch(
        "payments.apis.payment_get", autospec=selectors.payment_get, side_effect=RuntimeError("secret internal detail")
    ) as broken:
        response = api.get(f"{PAYMENTS_URL}/{payment.id}")

    assert broken.called
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert error["details"] == []
    content = response.content.decode()
    assert "secret internal detail" not in content
    assert "Traceback" not in content and "RuntimeError" not in content


def test_unexpected_error_in_a_plain_django_view_under_v1_is_a_json_500(settings, db):
    settings.ROOT_URLCONF = PLAIN_URLS

    response = Client().get("/v1/plain/raises")

    assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret internal detail" not in response.content.decode()


# --- 503: the database unavailable (docs/04-operations.md, "Faults and what PGI does") --------


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_database_lost_in_a_view_is_a_json_503_with_retry_after(api, merchant, error):
    payment = PaymentFactory(merchant=merchant)
    with mock.patch(
        "payments.apis.payment_get", autospec=selectors.payment_get, side_effect=error("terminating connection")
    ):
        response = api.get(f"{PAYMENTS_URL}/{payment.id}")

    error_body = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error_body["details"] == []
    assert response.headers["Retry-After"] == "1"
    assert "terminating connection" not in response.content.decode()


def test_database_lost_in_a_plain_django_view_under_v1_is_a_json_503(settings, db):
    settings.ROOT_URLCONF = PLAIN_URLS

    response = Client().get("/v1/plain/database-gone")

    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"


def test_html_error_from_a_plain_django_view_under_v1_becomes_the_json_format(settings, db):
    settings.ROOT_URLCONF = PLAIN_URLS

    assert_error(Client().get("/v1/plain/html-400"), 400, "BAD_REQUEST")
    assert Client().get("/v1/plain/ok").content == b"ok"


def test_errors_outside_v1_keep_djangos_own_pages(settings, db):
    settings.ROOT_URLCONF = PLAIN_URLS

    response = Client(raise_request_exception=False).get("/plain/raises")

    assert response.status_code == 500
    assert not response.headers["Content-Type"].startswith("application/json")

