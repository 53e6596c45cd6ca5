"""The rate limits of an API key and of its merchant (all its keys together): DRF's sliding window,
kept in Redis as a sorted set per window that one Lua script trims, counts and appends to (one
round trip per request for both)."""

import redis

from pgi.api.throttling import ApiKeyRateThrottle
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create

from ..conftest import client_for
from .helpers import assert_error

PAYMENTS_URL = "/v1/payments"


def test_the_window_slides_a_request_older_than_the_duration_no_longer_counts(settings, merchant, monkeypatch):
    settings.PGI_API_RATE = "2/min"
    _, key = api_key_create(name="checkout", merchant=merchant)
    client = client_for(key)
    now = [1_000_000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: now[0])

    assert client.get(PAYMENTS_URL).status_code == 200
    now[0] += 30
    assert client.get(PAYMENTS_URL).status_code == 200
    now[0] += 1
    refused = client.get(PAYMENTS_URL)
    assert refused.status_code == 429
    # DRF's wait: what is left of the oldest request's minute (60 - 31 s), rounded up.
    assert refused.headers["Retry-After"] == "29"

    now[0] += 29.5  # the first request is now more than a minute old: one place is free again
    assert client.get(PAYMENTS_URL).status_code == 200
    assert client.get(PAYMENTS_URL).status_code == 429


def test_a_throttle_check_is_one_redis_round_trip_for_the_key_and_its_merchant(settings, merchant, monkeypatch):
    settings.PGI_API_RATE = "100/min"
    settings.PGI_MERCHANT_API_RATE = "150/min"
    api_key, _ = api_key_create(name="checkout", merchant=merchant)
    api_key = ApiKey.objects.select_related("merchant").get(pk=api_key.pk)  # as the lookup cache holds it
    sent = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(args[0])
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    throttle = ApiKeyRateThrottle()

    class Request:
        auth = api_key

    assert [window.ident for window in throttle.windows_for(api_key)] == [f"api_key_{api_key.prefix}", f"merchant_{merchant.pk}"]
    assert throttle.allow_request(Request(), None) is True
    assert [command for command in sent if command != "SCRIPT LOAD"] == ["EVALSHA"]


def test_a_merchants_limit_is_shared_by_all_its_keys(settings, merchant, other_merchant):
    settings.PGI_API_RATE = "100/min"
    merchant.api_rate_limit = "3/min"
    merchant.save()
    first = client_for(api_key_create(name="checkout", merchant=merchant)[1])
    second = client_for(api_key_create(name="backoffice", merchant=merchant)[1])
    elsewhere = client_for(api_key_create(name="checkout", merchant=other_merchant)[1])

    assert [c.get(PAYMENTS_URL).status_code for c in (first, second, first)] == [200, 200, 200]
    refused = second.get(PAYMENTS_URL)

    error = assert_error(refused, 429, "RATE_LIMITED")
    assert "all of merchant456's API keys" in error["message"] and "at most 3 per 60 s" in error["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert first.get(PAYMENTS_URL).status_code == 429
    assert elsewhere.get(PAYMENTS_URL).status_code == 200  # another merchant's budget is its own


def test_a_keys_own_limit_replaces_the_default_and_a_request_refused_by_one_window_counts_in_none(
    settings, merchant, monkeypatch
):
    settings.PGI_API_RATE = "100/min"
    settings.PGI_MERCHANT_API_RATE = "3/min"
    _, narrow_key = api_key_create(name="narrow", merchant=merchant, rate_limit="1/min")
    _, wide_key = api_key_create(name="wide", merchant=merchant)
    narrow, wide = client_for(narrow_key), client_for(wide_key)

    assert narrow.get(PAYMENTS_URL).status_code == 200
    for _ in range(3):  # refused by the key's own window: not counted in the merchant's
        error = assert_error(narrow.get(PAYMENTS_URL), 429, "RATE_LIMITED")
        assert "this API key" in error["message"]
    assert [wide.get(PAYMENTS_URL).status_code for _ in range(3)] == [200, 200, 429]


def test_a_platform_key_counts_in_its_own_window_only(settings, merchant):
    settings.PGI_API_RATE = "100/min"
    settings.PGI_MERCHANT_API_RATE = "1/min"
    platform = client_for(api_key_create(name="tps", merchant=None)[1])

    assert [platform.get(PAYMENTS_URL).status_code for _ in range(3)] == [200, 200, 200]


def test_without_redis_the_windows_are_drfs_lists_in_the_cache(settings, merchant, monkeypatch):
    """The SQLite cache of local runs has no Lua: the same budgets, in DRF's lists."""
    from django.core.cache.backends.locmem import LocMemCache

    monkeypatch.setattr(ApiKeyRateThrottle, "cache", LocMemCache("throttle-test", {}))
    settings.PGI_API_RATE = "2/min"
    merchant.api_rate_limit = "3/min"
    merchant.save()
    first = client_for(api_key_create(name="checkout", merchant=merchant)[1])
    second = client_for(api_key_create(name="backoffice", merchant=merchant)[1])

    assert [first.get(PAYMENTS_URL).status_code for _ in range(3)] == [200, 200, 429]
    assert [second.get(PAYMENTS_URL).status_code for _ in range(2)] == [200, 429]
    assert "all of merchant456's API keys" in second.get(PAYMENTS_URL).json()["error"]["message"]


def test_a_merchant_limit_set_by_staff_applies_to_the_next_request(settings, merchant, monkeypatch):
    monkeypatch.setattr("pgi.lookups.TOMBSTONE_SECONDS", 0)
    settings.PGI_API_RATE = "100/min"
    client = client_for(api_key_create(name="checkout", merchant=merchant)[1])
    assert [client.get(PAYMENTS_URL).status_code for _ in range(2)] == [200, 200]  # key and merchant cached

    merchant.api_rate_limit = "2/min"
    merchant.save()  # what the admin's save does

    # The merchant's window starts now (nothing counted in it before there was one).
    assert [client.get(PAYMENTS_URL).status_code for _ in range(3)] == [200, 200, 429]
