"""The API key, merchant and routes a request reads come from the shared cache (pgi.lookups), and an
edit is seen by the very next request: revoking a key, deactivating a merchant, enabling a
currency, switching a route off."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateways.models import GatewayRoute
from pgi import lookups
from pgi.merchants.models import MerchantCurrency
from pgi.merchants.selectors import merchant_get_by_code
from pgi.merchants.services import api_key_create, api_key_revoke, api_key_update

from ..conftest import client_for

PAYMENTS_URL = "/v1/payments"
BODY = '{"amount": 50.00, "currency": "%s", "fromAccount": "account123", "toMerchant": "merchant456"}'


@pytest.fixture
def no_tombstones(monkeypatch):
    """Rows created by the test are cached at their first read, not two seconds later."""
    monkeypatch.setattr("pgi.lookups.TOMBSTONE_SECONDS", 0)


def pay(client, currency="USD"):
    return client.post(PAYMENTS_URL, BODY % currency, content_type="application/json")


def key_selects(queries) -> int:
    return sum('FROM "merchants_apikey"' in q["sql"] for q in queries.captured_queries)


def test_a_cached_key_is_not_read_again(no_tombstones, merchant):
    _, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    client.get(PAYMENTS_URL)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(PAYMENTS_URL).status_code == 200

    assert key_selects(queries) == 0


def test_a_revoked_key_is_refused_by_the_next_request(no_tombstones, merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert client.get(PAYMENTS_URL).status_code == 200  # cached now

    api_key_revoke(api_key=api_key)

    assert client.get(PAYMENTS_URL).status_code == 401


def test_a_deactivated_merchants_key_is_refused_by_the_next_request(no_tombstones, merchant):
    _, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert client.get(PAYMENTS_URL).status_code == 200

    merchant.is_active = False
    merchant.save()

    assert client.get(PAYMENTS_URL).status_code == 401


def test_a_currency_enabled_is_accepted_by_the_next_payment(no_tombstones, merchant):
    _, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert pay(client, "GBP").json()["error"]["code"] == "CURRENCY_NOT_ENABLED"

    MerchantCurrency.objects.create(merchant=merchant, currency="GBP")

    assert pay(client, "GBP").status_code == 201


def test_a_route_switched_off_routes_the_next_payment_elsewhere(no_tombstones, two_simulators, merchant):
    _, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert pay(client).json()["gateway"] == "simulator"

    route = GatewayRoute.objects.get(merchant=merchant, gateway="simulator")
    route.is_active = False
    route.save()
    assert pay(client).json()["gateway"] == "simulator_b"

    route.delete()
    GatewayRoute.objects.filter(merchant=merchant, gateway="simulator_b").delete()
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=5)
    assert pay(client).json()["gateway"] == "simulator"


def test_a_renamed_merchant_is_not_found_under_its_old_code(no_tombstones, merchant):
    assert merchant_get_by_code(code="merchant456") == merchant

    merchant.code = "merchant999"
    merchant.save()

    assert merchant_get_by_code(code="merchant456") is None
    assert merchant_get_by_code(code="merchant999") == merchant


def test_a_reader_that_read_before_an_edit_cannot_store_the_old_row(db):
    built = []
    lookups.lookup("thing", 1, lambda: built.append("old") or "old")  # cached
    lookups.lookup_forget("thing", [1])  # an edit: the tombstone

    # A reader that read the old row before the edit committed tries to store it back.
    assert lookups.lookup("thing", 1, lambda: "old row read before the commit") == "old row read before the commit"
    assert cache.get(lookups._key("thing", 1)) == lookups.TOMBSTONE
    # Once the tombstone is gone, the next reader reads and stores the row as it is now.
    cache.delete(lookups._key("thing", 1))
    assert lookups.lookup("thing", 1, lambda: "new") == "new"
    assert lookups.lookup("thing", 1, lambda: "never read") == "new"


def test_a_cache_that_fails_falls_back_to_the_database(no_tombstones, merchant, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", broken)
    monkeypatch.setattr(cache, "add", broken)

    assert merchant_get_by_code(code="merchant456") == merchant


def test_a_scope_taken_away_is_refused_by_the_next_request(no_tombstones, merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert client.get(PAYMENTS_URL).status_code == 200  # cached now, with its scopes

    api_key_update(
        api_key=api_key, name=api_key.name, scopes=["refunds:read"], expires_at=None, rate_limit=""
    )

    response = client.get(PAYMENTS_URL)
    assert response.status_code == 403 and response.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    assert client.get("/v1/refunds").status_code == 200


def test_a_scope_given_in_the_admin_is_granted_by_the_next_request(no_tombstones, merchant, admin_client):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(full_key)
    assert client.get("/v1/settlements").status_code == 403  # cached now, without settlements:read

    response = admin_client.post(
        reverse("admin:merchants_apikey_change", args=[api_key.pk]),
        {"name": "checkout", "scopes": [*api_key.scopes, "settlements:read"], "expires_at_0": "", "expires_at_1": "",
         "rate_limit": ""},
    )  # fmt: skip

    assert response.status_code == 302
    assert client.get("/v1/settlements").status_code == 200


def test_scopes_and_limits_come_with_the_cached_key(no_tombstones, merchant):
    merchant.api_rate_limit = "1000/min"
    merchant.save()
    _, full_key = api_key_create(name="checkout", merchant=merchant, rate_limit="500/min")
    client = client_for(full_key)
    client.get(PAYMENTS_URL)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(PAYMENTS_URL).status_code == 200

    assert key_selects(queries) == 0
    assert not any('FROM "merchants_merchant"' in q["sql"] for q in queries.captured_queries)
