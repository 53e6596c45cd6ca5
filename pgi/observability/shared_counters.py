"""Counters that every PGI process adds to and any web process reads: kept in the shared cache.

Payment and refund outcomes are reached in web workers, Celery workers and the payment-requests
consumer, and Celery tasks fail in the workers; a web pod's /metrics cannot read another pod's
memory. So these counts live where all processes already meet: Redis (one HINCRBY per count, one
HGETALL per scrape), or the SQLite cache of `make run`. They are totals for the whole installation,
the same from every web pod: aggregate them with max(), not sum() (docs/04-operations.md).

Counting never fails the caller: a cache that is down loses the count and logs at DEBUG (the
breaker's own warning already says the cache is down). A Redis that loses its data starts the
counts again from zero, which Prometheus' rate() reads as a counter reset.
"""

import logging

from django.core.cache import cache

log = logging.getLogger(__name__)

SEPARATOR = "|"  # between label values in a field or key: gateway codes, statuses and task names have none


def _key(name: str) -> str:
    return f"pgi:metrics:{name}"


def _redis():
    client = getattr(cache, "redis_client", None)
    return client() if client is not None else None


def counter_add(name: str, labels: tuple[str, ...], amount: int = 1) -> None:
    """Add `amount` to counter `name` for these label values."""
    field = SEPARATOR.join(labels)
    try:
        redis = _redis()
        if redis is not None:
            redis.hincrby(cache.make_and_validate_key(_key(name)), field, amount)
        else:
            _local_add(name, field, amount)
    except Exception as exc:  # noqa: BLE001 - a lost count must never fail a payment or a task
        log.debug("metrics: could not count %s%s: %s", name, labels, exc)


def counter_values(name: str) -> dict[tuple[str, ...], int]:
    """{label values: count} of counter `name`. Raises when the cache cannot be read."""
    redis = _redis()
    if redis is not None:
        raw = redis.hgetall(cache.make_and_validate_key(_key(name)))
        fields = {field.decode(): int(value) for field, value in raw.items()}
    else:
        names = cache.get(_key(name) + ":fields") or []
        found = cache.get_many([f"{_key(name)}:{field}" for field in names])
        fields = {field: found.get(f"{_key(name)}:{field}", 0) for field in names}
    return {tuple(field.split(SEPARATOR)): count for field, count in fields.items()}


def _local_add(name: str, field: str, amount: int) -> None:
    """Without Redis: one cache key per label set (add and incr are atomic in pgi/sqlite_cache.py),
    and the list of label sets beside them. Two processes adding different new label sets at once
    may each write the list without the other's; the next count of the lost one puts it back."""
    key = f"{_key(name)}:{field}"
    cache.add(key, 0, timeout=None)
    cache.incr(key, amount)
    names_key = _key(name) + ":fields"
    names = cache.get(names_key) or []
    if field not in names:
        cache.set(names_key, [*names, field], timeout=None)

