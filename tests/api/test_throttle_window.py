"""The API key's rate limit: DRF's sliding window, kept in Redis as a sorted set that one Lua script
trims, counts and appends to (one round trip per request)."""

import redis

from pgi.api.throttling import ApiKeyRateThrottle
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create

from ..conftest import client_for

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
