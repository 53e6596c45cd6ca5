import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from pgi.merchants.rates import rate_parse

logger = logging.getLogger(__name__)

# DRF's sliding window (SimpleRateThrottle) in one round trip, for every window a request counts
# in (the key's, and its merchant's across all its keys): its pickled list of timestamps, read and
# written back whole on every request (2 round trips per window, and as many floats as the budget),
# becomes a sorted set of timestamps per window that Redis trims, counts and appends to atomically.
# A request is counted in every window or in none: all are checked before any is appended to.
# KEYS: the windows. ARGV: now, the request's member, then each window's duration and limit.
# Returns {allowed (1/0), the refusing window's number (1-based; 0 when allowed), requests in it,
# its oldest timestamp (as text)}.
WINDOW_SCRIPT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local duration, limit = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {0, i, count, oldest[2]}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, tonumber(ARGV[1 + 2 * i]))
end
return {1, 0, 0, ARGV[1]}
"""


@dataclass(frozen=True)
class Window:
    """One budget a request counts in: `requests` per `duration` seconds, counted under `ident`."""

    ident: str
    requests: int
    duration: int
    what: str  # who shares it, for the 429's message


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Request budgets per API key and per merchant (all its keys together), counted in the shared
    cache (Redis outside local runs).

    A key's budget is its own `rate_limit`, else PGI_API_RATE; a merchant key counts too in its
    merchant's `api_rate_limit`, else PGI_MERCHANT_API_RATE (empty: none). Platform keys count in
    their own window only. Each window slides as DRF's: a request is allowed while fewer than the
    budget were allowed in the last `duration` seconds. With Redis the windows are one Lua script
    (one round trip, atomic); with another cache (the SQLite cache of local runs) DRF's own lists.
    The limits come with the cached key and merchant (pgi.lookups): no query."""

    _script = None

    def __init__(self):
        pass  # the rates are per request (windows_for), not per class

    def windows_for(self, api_key) -> list[Window]:
        windows = []
        key_rate = rate_parse(api_key.rate_limit or settings.PGI_API_RATE)
        if key_rate:
            windows.append(Window(f"api_key_{api_key.prefix}", *key_rate, what="this API key"))
        merchant = api_key.merchant
        if merchant is not None:
            merchant_rate = rate_parse(merchant.api_rate_limit or settings.PGI_MERCHANT_API_RATE)
            if merchant_rate:
                windows.append(Window(f"merchant_{merchant.pk}", *merchant_rate, what=f"all of {merchant.code}'s API keys"))
        return windows

    def allow_request(self, request, view):
        if request.auth is None:
            return True
        windows = self.windows_for(request.auth)
        if not windows:
            return True
        self.now = self.timer()
        redis_client = getattr(self.cache, "redis_client", None)
        try:
            if redis_client is None:
                refused, count, oldest = self._check_in_cache(windows)
            else:
                refused, count, oldest = self._check_in_redis(redis_client(), windows)
        except Exception:  # a cache that fails must not fail payments: the request goes through
            logger.warning("throttle: cache unavailable, request allowed", exc_info=True)
            return True
        if refused is None:
            return True
        # What DRF's wait() reads: the refusing window's budget, length and oldest entry.
        self.num_requests, self.duration = refused.requests, refused.duration
        self.history = [oldest] * count
        # DRF adds "Expected available in N seconds." and the handler the Retry-After header.
        raise Throttled(
            self.wait(), detail=f"Too many requests for {refused.what}: at most {refused.requests} per {refused.duration} s."
        )

    def _key(self, window: Window) -> str:
        return f"throttle_{window.ident}:window"  # a key's is named as before merchants had one

    def _check_in_redis(self, client, windows: list[Window]) -> tuple[Window | None, int, float]:
        args = [repr(self.now), f"{self.now!r}:{secrets.token_hex(4)}"]
        for window in windows:
            args += [window.duration, window.requests]
        allowed, refused, count, oldest = self._window(client)(
            keys=[self.cache.make_and_validate_key(self._key(window)) for window in windows], args=args, client=client
        )
        return (None, 0, 0.0) if allowed else (windows[int(refused) - 1], int(count), float(oldest))

    def _check_in_cache(self, windows: list[Window]) -> tuple[Window | None, int, float]:
        """DRF's lists, newest first, one per window; not atomic (two processes may both take the
        last place), as DRF's own throttle is not."""
        histories = []
        for window in windows:
            history = [t for t in self.cache.get(self._key(window), []) if t > self.now - window.duration]
            if len(history) >= window.requests:
                return window, len(history), history[-1]
            histories.append(history)
        for window, history in zip(windows, histories):
            self.cache.set(self._key(window), [self.now, *history], window.duration)
        return None, 0, 0.0

    @classmethod
    def _window(cls, client):
        if cls._script is None:  # registered once; each call names its thread's client
            cls._script = client.register_script(WINDOW_SCRIPT)
        return cls._script
