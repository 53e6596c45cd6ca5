"""A circuit breaker per payment gateway, its state shared by every PGI process through the Django cache.

CLOSED: calls go through; failures are counted. When `failure_threshold` failures fall within
`window_seconds`, the circuit opens. OPEN: calls are refused (PGI fails over to the next gateway)
for `open_seconds`. Then HALF_OPEN: exactly one caller, across all processes, is let through as the
probe; its success closes the circuit, its failure opens it again for `open_seconds`.

Callers: `allow()` before calling the gateway; afterwards `record_success()` when the gateway
answered (a decline is an answer) or `record_failure()` when it did not (GatewayUnavailable,
GatewayTimeout; not those staged by the simulator's test values, see `counts_for_breaker`). The breaker cannot tell a probe's report from any other caller's, so any success
closes the circuit and any failure reported while half-open re-opens it: both say what the gateway
does right now.

The state lives in the cache (Redis in production and tests) so that every web and worker process
sees one circuit per gateway. Only operations that RedisCache maps onto single atomic Redis commands
are used (add = SET NX EX, set = SET EX, get, get_many = MGET, delete_many = DEL, incr = INCR after
an EXISTS check, touch = EXPIRE), so no read-modify-write can lose an update or elect two probes.
Deadlines are values from the breaker's clock, not key expiries, so tests move time without
sleeping; every key still has an expiry so that nothing lingers. `make run` without Redis shares
it the same way through pgi/sqlite_cache.py, where add and incr are atomic too.

A breaker never raises because the cache failed: it logs a warning and fails open (lets the call
through, records nothing). A payment must not be refused because Redis blinked.

Keys (under the cache's own KEY_PREFIX):
    pgi:breaker:<code>:open                              end of the open circuit's cooling (float)
    pgi:breaker:<code>:failures:<window>:<bucket>        failure count of one time bucket (int)
    pgi:breaker:<code>:probe:<open_until>:<slot>         one probe claim's deadline (float)
"""

import enum
import functools
import logging
import math
import time
from dataclasses import dataclass, fields
from typing import Any, Callable

from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# The window is counted in this many buckets: a failure counts for at least (BUCKETS-1)/BUCKETS of
# window_seconds and never for longer than window_seconds.
_BUCKETS = 10
# How long the cache remembers an open circuit once it has cooled down and no probe has settled it.
# Past this the circuit closes by itself: the worst that costs is `failure_threshold` failed calls
# (which fail over) before it opens again.
_HALF_OPEN_MEMORY_SECONDS = 3600
# Expiry beyond the last moment a key can matter, so that clock skew between hosts never drops it early.
_TTL_MARGIN_SECONDS = 60
# Probe claim slots read per round trip, and cleared when the circuit closes.
_CLAIM_SLOTS_PER_READ = 8


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """Raises ValueError unless every field is a positive integer."""

    failure_threshold: int = 5  # failures within window_seconds that open the circuit
    window_seconds: int = 60
    open_seconds: int = 30  # how long an open circuit keeps the gateway out before one probe

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"BreakerPolicy.{field.name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the admin shows. `open_until` is on the breaker's clock (time.time: a Unix timestamp);
    it is set while OPEN and HALF_OPEN, None while CLOSED."""

    state: BreakerState
    failures: int  # counted within the current window
    open_until: float | None


# What a breaker reports while the cache cannot be read: it lets every call through, as closed does.
_UNKNOWN = BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)


def _fail_open(fallback: Any) -> Callable:
    """Turn any error of the decorated method (the cache is down, slow, refusing) into a warning and
    `fallback`."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except Exception:  # noqa: BLE001 - deliberately broad, see below
                # A last resort: each cache backend fails in its own way (redis, sqlite3, pickling …),
                # and no error of the breaker may stop a payment.
                logger.warning(
                    "circuit breaker of %s: %s failed, failing open", self.code, method.__name__, exc_info=True
                )
                return fallback

        return wrapper

    return decorate


class CircuitBreaker:
    """The circuit of one gateway. Holds no state itself (all of it is in the cache), so instances
    are cheap and may be shared between threads."""

    def __init__(self, code: str, policy: BreakerPolicy, *, cache=None, clock: Callable[[], float] = time.time):
        self.code = code
        self.policy = policy
        # The `cache` proxy resolves to the current thread's connection on each use.
        self._cache = default_cache if cache is None else cache
        self._clock = clock
        self._prefix = f"pgi:breaker:{code}:"
        self._bucket_seconds = policy.window_seconds / _BUCKETS
        self._bucket_ttl = math.ceil(policy.window_seconds + self._bucket_seconds) + _TTL_MARGIN_SECONDS
        # Probe claims get the open key's expiry, and are written after it: while the open key
        # exists, all the claims of its opening exist too (see _claim_probe).
        self._open_ttl = policy.open_seconds + _HALF_OPEN_MEMORY_SECONDS + _TTL_MARGIN_SECONDS

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.code!r}, {self.policy!r})"

    # --- public API -------------------------------------------------------------------------

    @_fail_open(True)
    def allow(self) -> bool:
        """May the caller call the gateway now?

        CLOSED: True. OPEN and still cooling: False. Cooled down (HALF_OPEN): True for exactly one
        caller across all processes, the probe, which must then report with record_success() or
        record_failure(); False for everyone else until it does, or until its claim expires
        open_seconds after it was made (a crashed prober cannot keep the circuit half-open for ever:
        the next caller becomes the probe). True, with a warning logged, when the cache fails.
        """
        now = self._clock()
        open_until = self._cache.get(self._open_key)
        if open_until is None:
            return True
        if now < open_until:
            return False
        return self._claim_probe(open_until, now)

    @_fail_open(None)
    def record_success(self) -> None:
        """The gateway answered: close the circuit, clear the failure count and any probe claim.
        Costs one read when there is nothing to clear. Never raises."""
        self._close(reason="the gateway answered")

    @_fail_open(None)
    def record_failure(self) -> None:
        """The gateway did not answer.

        CLOSED: count the failure; the one that brings the count within the window to
        failure_threshold opens the circuit for open_seconds. HALF_OPEN: the probe failed, re-open
        for open_seconds at once. OPEN and cooling: nothing (a call that started before the circuit
        opened tells nothing new, and must not push the probe further away). Never raises.
        """
        now = self._clock()
        open_until = self._cache.get(self._open_key)
        if open_until is not None:
            if now >= open_until:
                # Plain set: several failed reports at once each re-open, the last one's deadline
                # stands. Each opening has its own claim keys, so no claim carries over.
                self._cache.set(self._open_key, now + self.policy.open_seconds, timeout=self._open_ttl)
                logger.warning("circuit of %s re-opened: the probe failed", self.code)
            return
        failures = self._count_failure(now)
        # add, not set: when several processes cross the threshold at once, the first opening
        # stands and the others do not push its deadline further.
        if failures >= self.policy.failure_threshold and self._cache.add(
            self._open_key, now + self.policy.open_seconds, timeout=self._open_ttl
        ):
            logger.warning(
                "circuit of %s opened for %ds: %d failures within %ds",
                self.code,
                self.policy.open_seconds,
                failures,
                self.policy.window_seconds,
            )

    @_fail_open(_UNKNOWN)
    def snapshot(self) -> BreakerSnapshot:
        """The state now, for people. While the cache cannot be read: CLOSED with no failures, which
        is what the breaker then does (it lets every call through)."""
        now = self._clock()
        values = self._cache.get_many([self._open_key, *self._bucket_keys(now)])
        open_until = values.pop(self._open_key, None)
        if open_until is None:
            state = BreakerState.CLOSED
        elif now < open_until:
            state = BreakerState.OPEN
        else:
            state = BreakerState.HALF_OPEN
        return BreakerSnapshot(state=state, failures=sum(values.values()), open_until=open_until)

    @_fail_open(None)
    def reset(self) -> None:
        """Staff action: close the circuit now and forget the failures. Does nothing more than
        log a warning when the cache fails (the breaker then lets every call through anyway)."""
        self._close(reason="reset by staff")

    # --- internals --------------------------------------------------------------------------

    @property
    def _open_key(self) -> str:
        return f"{self._prefix}open"

    def _bucket_keys(self, now: float) -> list[str]:
        """The keys of the buckets that make up the window ending now, oldest first. The window's
        length is part of the key: a changed policy never reads buckets cut to another length."""
        current = math.floor(now / self._bucket_seconds)
        window = self.policy.window_seconds
        return [f"{self._prefix}failures:{window}:{bucket}" for bucket in range(current - _BUCKETS + 1, current + 1)]

    def _claim_keys(self, open_until: float, first: int, count: int) -> list[str]:
        # repr() of a float round-trips exactly: every process derives the same key from the value.
        return [f"{self._prefix}probe:{open_until!r}:{slot}" for slot in range(first, first + count)]

    def _claim_probe(self, open_until: float, now: float) -> bool:
        """Claim the probe of the opening that cools at `open_until`.

        Claims are slots 0, 1, 2, ... each written once with add() (SET NX) and never overwritten, so
        Redis decides each slot for exactly one caller. A caller moves past a slot only after reading
        that its claim has expired; the first empty slot is then up for grabs. This needs no
        compare-and-set, and no process can die between two writes and leave a claim that nobody
        can take over. Slots exist as long as the open key (same expiry, written later), so an
        empty slot is never one whose claim has merely been forgotten. Normally slot 0 decides:
        later slots are only reached after a prober crashed or hung past open_seconds.
        """
        claim_until = now + self.policy.open_seconds
        first = 0
        while True:
            keys = self._claim_keys(open_until, first, _CLAIM_SLOTS_PER_READ)
            claims = self._cache.get_many(keys)
            for key in keys:
                deadline = claims.get(key)
                if deadline is None:
                    if self._cache.add(key, claim_until, timeout=self._open_ttl):
                        return True
                    # Another caller took the slot between our read and our add.
                    deadline = self._cache.get(key)
                    if deadline is None:  # and the circuit has closed since: refuse this once
                        return False
                if now < deadline:
                    return False
            first += _CLAIM_SLOTS_PER_READ

    def _count_failure(self, now: float) -> int:
        """Add one failure to the current bucket; return the failures within the window."""
        key = self._bucket_keys(now)[-1]
        # add-then-incr: add() creates the bucket with its expiry if it is missing; incr() (INCR)
        # counts atomically when it exists. incr() raises ValueError when the bucket vanished in
        # between (record_success or reset cleared it): start over. Three rounds lose the failure
        # only while successes keep clearing the count, when it would not count anyway.
        for _ in range(3):
            if self._cache.add(key, 1, timeout=self._bucket_ttl):
                break
            try:
                count = self._cache.incr(key)
            except ValueError:
                continue
            if count == 1:
                # Django's RedisCache.incr is EXISTS then INCR: a clear between the two leaves INCR
                # to create the bucket afresh, without expiry. Give it one.
                self._cache.touch(key, self._bucket_ttl)
            break
        return sum(self._cache.get_many(self._bucket_keys(now)).values())

    def _close(self, *, reason: str) -> None:
        """Delete the open key, the window's failure buckets and the first claim slots of the
        opening, if there is anything to clear. Claim slots past those (only after several crashed
        probes) belong to an opening nobody can reach any more, and expire."""
        keys = [self._open_key, *self._bucket_keys(self._clock())]
        found = self._cache.get_many(keys)
        if not found:
            return
        open_until = found.get(self._open_key)
        if open_until is not None:
            keys += self._claim_keys(open_until, 0, _CLAIM_SLOTS_PER_READ)
        # One DEL: the circuit closes and its count clears at the same instant. A failure that opened
        # the circuit between our read and the DEL is undone with it: the two reports crossed, and
        # the gateway did answer; further failures count again from zero.
        self._cache.delete_many(keys)
        if open_until is not None:
            logger.info("circuit of %s closed: %s", self.code, reason)


def breaker_for(code: str) -> CircuitBreaker:
    """The breaker of one gateway, on the default cache and the wall clock.

    Its policy: BreakerPolicy's defaults, overridden by settings.PGI_CIRCUIT_BREAKER (a dict of
    BreakerPolicy fields), overridden for this gateway by settings.PGI_CIRCUIT_BREAKER_OVERRIDES[code].
    Raises ImproperlyConfigured when those name an unknown field or a value that is not a positive
    integer. Settings are read on every call, so override_settings applies at once.
    """
    options = {
        **getattr(settings, "PGI_CIRCUIT_BREAKER", {}),
        **getattr(settings, "PGI_CIRCUIT_BREAKER_OVERRIDES", {}).get(code, {}),
    }
    try:
        policy = BreakerPolicy(**options)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"circuit breaker policy of gateway {code!r}: {exc}") from exc
    return CircuitBreaker(code, policy)
