"""Django's Redis cache, with one Redis client per connection pool instead of one per call.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache call; each copies
redis-py's table of ~170 response callbacks, which a profile of a GET showed as a visible part of
the request. A client only wraps its pool and is thread-safe, so one per pool serves every call.
"""

from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.redis import RedisCacheClient


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(django_redis.RedisCache):
    """settings.CACHES' backend when REDIS_URL is set (named as Django's: the admin and /health name it)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledRedisCacheClient

    def redis_client(self):
        """The redis-py client of the primary, for what the cache API cannot say in one round trip
        (the throttle's script)."""
        return self._cache.get_client(write=True)
