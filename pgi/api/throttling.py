import logging
import secrets

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# DRF's sliding window (SimpleRateThrottle) in one round trip: its pickled list of timestamps, read
# and written back whole on every request (2 round trips, and as many floats as the budget), becomes
# a sorted set of timestamps that Redis trims, counts and appends to atomically.
# Returns {allowed (1/0), requests in the window, oldest timestamp in the window (as text)}.
WINDOW_SCRIPT = """
local now, duration, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - duration)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, count, oldest[2]}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], duration)
return {1, count + 1, ARGV[1]}
"""


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A request budget per API key, counted in the shared cache (Redis outside local runs).

    The window slides as DRF's: a request is allowed while fewer than the budget were allowed in the
    last `duration` seconds. With Redis the window is one Lua script (one round trip, atomic); with
    another cache (the SQLite cache of local runs) it is DRF's own list."""

    scope = "api_key"
    cache_format = "throttle_%(scope)s_%(ident)s"
    _script = None

    def get_rate(self):
        # Read at call time, not import time, so that operators and tests can change it.
        return settings.PGI_API_RATE

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        redis_client = getattr(self.cache, "redis_client", None)
        if redis_client is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        try:
            client = redis_client()
            allowed, count, oldest = self._window(client)(
                keys=[self.cache.make_and_validate_key(self.key + ":window")],
                args=[repr(self.now), self.duration, self.num_requests, f"{self.now!r}:{secrets.token_hex(4)}"],
                client=client,
            )
        except Exception:  # a Redis that fails must not fail payments: the request goes through
            logger.warning("throttle: cache unavailable, request allowed", exc_info=True)
            return True
        # What DRF's wait() reads: the window's length and its oldest entry.
        self.history = [float(oldest)] * int(count)
        return bool(allowed)

    @classmethod
    def _window(cls, client):
        if cls._script is None:  # registered once; each call names its thread's client
            cls._script = client.register_script(WINDOW_SCRIPT)
        return cls._script
