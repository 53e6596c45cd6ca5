"""API keys: stored hashed, found by prefix, revocable, last use recorded; merchant and platform keys."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.models import Payment
from pgi.merchants.models import ApiKey
from pgi.merchants.selectors import api_key_get_active
from pgi.merchants.services import api_key_create, api_key_revoke

from ..api.helpers import PAYMENTS_URL, assert_error, payment_body, post_json
from ..conftest import client_for
from ..factories import MerchantFactory

pytestmark = pytest.mark.django_db


def test_key_row_never_holds_the_secret(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    secret = full_key.split("_", 2)[2]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM merchants_apikey WHERE id = %s", [api_key.pk])
        row = cursor.fetchone()

    stored = " ".join(str(value) for value in row)
    assert secret not in stored
    assert full_key not in stored
    assert api_key.prefix in stored  # the visible part is kept, to find the row


def test_key_is_found_by_its_prefix_and_checked_against_the_hash(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    _, other_full_key = api_key_create(name="other", merchant=merchant)

    assert api_key_get_active(full_key=full_key) == api_key
    assert api_key_get_active(full_key=f"pgi_{api_key.prefix}_{other_full_key.split('_', 2)[2]}") is None


def test_revoked_key_stops_authenticating_and_keeps_its_first_revocation_time(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    api_key_revoke(api_key=api_key)
    first = ApiKey.objects.get(pk=api_key.pk).revoked_at

    api_key_revoke(api_key=api_key)

    assert api_key_get_active(full_key=full_key) is None
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first
    assert_error(client_for(full_key).get(PAYMENTS_URL), 401, "UNAUTHENTICATED")


def test_first_use_records_last_used_at(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    assert api_key.last_used_at is None
    before = timezone.now()

    client_for(full_key).get(PAYMENTS_URL)

    api_key.refresh_from_db()
    assert before <= api_key.last_used_at <= timezone.now()


def test_last_used_at_is_not_rewritten_within_a_minute(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    client.get(PAYMENTS_URL)
    api_key.refresh_from_db()
    first = api_key.last_used_at

    with CaptureQueriesContext(connection) as queries:
        client.get(PAYMENTS_URL)
        client.get(PAYMENTS_URL)

    api_key.refresh_from_db()
    assert api_key.last_used_at == first
    assert not [q["sql"] for q in queries if q["sql"].startswith('UPDATE "merchants_apikey"')]


def test_last_used_at_is_refreshed_after_a_minute(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    long_ago = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=long_ago)

    client_for(full_key).get(PAYMENTS_URL)

    api_key.refresh_from_db()
    assert api_key.last_used_at > long_ago + timedelta(seconds=60)


def test_failed_authentication_does_not_touch_last_used_at(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)

    client_for(full_key[:-1] + ("A" if full_key[-1] != "A" else "B")).get(PAYMENTS_URL)

    api_key.refresh_from_db()
    assert api_key.last_used_at is None


def test_merchant_key_may_omit_to_merchant_and_pays_its_own_merchant(api, merchant):
    response = post_json(api, PAYMENTS_URL, payment_body(toMerchant=...))

    assert response.status_code == 201, response.content
    assert response.json()["toMerchant"] == merchant.code
    assert Payment.objects.get().merchant == merchant


def test_merchant_key_may_name_its_own_merchant(api, merchant):
    response = post_json(api, PAYMENTS_URL, payment_body(toMerchant=merchant.code))

    assert response.status_code == 201, response.content


def test_merchant_key_may_not_name_another_merchant(api, other_merchant):
    response = post_json(api, PAYMENTS_URL, payment_body(toMerchant=other_merchant.code))

    assert_error(response, 403, "MERCHANT_NOT_ALLOWED", field="toMerchant")
    assert not Payment.objects.exists()


def test_platform_key_may_name_any_merchant(platform_api, merchant, other_merchant):
    for code in (merchant.code, other_merchant.code):
        response = post_json(platform_api, PAYMENTS_URL, payment_body(toMerchant=code))

        assert response.status_code == 201, response.content
        assert response.json()["toMerchant"] == code
    assert sorted(Payment.objects.values_list("merchant__code", flat=True)) == sorted([merchant.code, other_merchant.code])


def test_platform_key_must_name_a_merchant(platform_api, merchant):
    response = post_json(platform_api, PAYMENTS_URL, payment_body(toMerchant=...))

    assert_error(response, 400, "VALIDATION_ERROR", field="toMerchant")
    assert not Payment.objects.exists()


def test_payment_records_the_key_that_created_it(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)

    post_json(client_for(full_key), PAYMENTS_URL, payment_body())

    assert Payment.objects.get().api_key == api_key


def test_platform_key_has_no_merchant_and_merchant_key_is_not_platform(merchant):
    platform, _ = api_key_create(name="tps", merchant=None)
    own, _ = api_key_create(name="checkout", merchant=MerchantFactory(code="shop-a"))

    assert platform.is_platform and platform.merchant is None
    assert not own.is_platform and own.merchant.code == "shop-a"
