"""The circuit breaker per gateway, against the real Redis-backed cache: time moves on a fake clock,
concurrency is real (threads at once, and a second process)."""

import logging
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

from gateways.breaker import BreakerPolicy, BreakerSnapshot, BreakerState, CircuitBreaker, breaker_for

POLICY = BreakerPolicy(failure_threshold=3, window_seconds=60, open_seconds=30)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True, scope="module")
def redis_cache():
    # On LocMem most of these would pass in one process and prove nothing about sharing.
    assert isinstance(caches["default"], RedisCache), "these tests need REDIS_URL: breakers share state through Redis"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def new_breaker(clock):
    """Breakers on unique gateway codes (no state shared between tests), reset afterwards."""
    made = []

    def make(policy: BreakerPolicy = POLICY, code: str | None = None) -> CircuitBreaker:
        breaker = CircuitBreaker(code or f"test-{uuid.uuid4().hex[:12]}", policy, clock=clock)
        made.append(breaker)
        return breaker

    yield make
    for breaker in made:
        breaker.reset()


def open_circuit(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.policy.failure_threshold):
        breaker.record_failure()
    assert breaker.snapshot().state is BreakerState.OPEN


def at_once(count: int, action):
    """Run `action` in `count` threads released together; return their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        barrier.wait()
        results[index] = action()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_a_new_breaker_is_closed_and_lets_calls_through(new_breaker):
    breaker = new_breaker()
    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)
    assert all(breaker.allow() for _ in range(10))


def test_failures_reaching_the_threshold_within_the_window_open_the_circuit(new_breaker, clock):
    breaker = new_breaker()
    breaker.record_failure()
    clock.advance(20)
    breaker.record_failure()
    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=2, open_until=None)
    assert breaker.allow()

    clock.advance(20)
    breaker.record_failure()

    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.OPEN, failures=3, open_until=clock.now + 30)
    assert not breaker.allow()


def test_failures_further_apart_than_the_window_do_not_add_up(new_breaker, clock):
    breaker = new_breaker()
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(61)
    breaker.record_failure()
    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=1, open_until=None)

    # The first two are long gone; this one and the last are within the window. (Failures are counted
    # in buckets of a tenth of the window: one counts for at least 54 of the 60 seconds, never more.)
    clock.advance(54)
    breaker.record_failure()
    assert breaker.snapshot().failures == 2
    assert breaker.snapshot().state is BreakerState.CLOSED


def test_failures_recorded_at_once_by_many_callers_are_all_counted(new_breaker):
    breaker = new_breaker(BreakerPolicy(failure_threshold=1000))
    at_once(20, breaker.record_failure)
    assert breaker.snapshot().failures == 20


def test_a_success_clears_the_failure_count(new_breaker):
    breaker = new_breaker()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=1, open_until=None)


def test_an_open_circuit_keeps_the_gateway_out_for_open_seconds(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    opened_until = breaker.snapshot().open_until

    clock.advance(29.9)
    breaker.record_failure()  # a call that started before it opened: must not push the probe away
    assert not any(breaker.allow() for _ in range(5))
    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.OPEN, failures=3, open_until=opened_until)

    clock.advance(0.1)
    assert breaker.snapshot().state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_after_open_seconds_exactly_one_of_many_concurrent_callers_is_the_probe(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)

    results = at_once(24, breaker.allow)

    assert results.count(True) == 1
    assert results.count(False) == 23
    assert not breaker.allow()  # still waiting for the probe's report


def test_concurrent_callers_in_other_breaker_instances_also_get_one_probe(new_breaker, clock):
    # As the web and worker processes do: each has its own CircuitBreaker object for the gateway.
    code = new_breaker().code
    open_circuit(new_breaker(code=code))
    clock.advance(30)

    results = at_once(24, lambda: CircuitBreaker(code, POLICY, clock=clock).allow())

    assert results.count(True) == 1


def test_a_successful_probe_closes_the_circuit(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)
    assert breaker.allow()

    breaker.record_success()

    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)
    assert all(breaker.allow() for _ in range(5))
    breaker.record_failure()  # counting starts again from zero
    assert breaker.snapshot().failures == 1
    assert breaker.snapshot().state is BreakerState.CLOSED


def test_a_failed_probe_reopens_the_circuit_at_once(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.snapshot().state is BreakerState.OPEN
    assert breaker.snapshot().open_until == clock.now + 30
    assert not breaker.allow()
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)  # the new opening has cooled: a new probe, and only one
    assert at_once(8, breaker.allow).count(True) == 1


def test_the_claim_of_a_probe_that_never_reports_expires_after_open_seconds(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)
    assert breaker.allow()  # this probe crashes and never reports

    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert at_once(8, breaker.allow).count(True) == 1  # one new probe

    clock.advance(30)  # and that one crashes too
    assert at_once(8, breaker.allow).count(True) == 1
    breaker.record_success()
    assert breaker.snapshot().state is BreakerState.CLOSED


def test_reset_closes_an_open_circuit(new_breaker):
    breaker = new_breaker()
    open_circuit(breaker)

    breaker.reset()

    assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)
    assert breaker.allow()


def test_reset_clears_a_half_open_circuit_and_its_probe_claim(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)
    assert breaker.allow()

    breaker.reset()
    open_circuit(breaker)  # opens again on the same clock value: same deadline as before
    clock.advance(30)

    assert breaker.allow()  # the old claim is gone, a new probe goes


def test_two_gateways_do_not_share_state(new_breaker):
    failing, healthy = new_breaker(), new_breaker()
    open_circuit(failing)
    healthy.record_failure()

    assert healthy.allow()
    assert healthy.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=1, open_until=None)
    healthy.record_success()
    assert failing.snapshot().state is BreakerState.OPEN


def test_every_key_the_breaker_writes_expires(new_breaker, clock):
    breaker = new_breaker()
    open_circuit(breaker)
    clock.advance(30)
    assert breaker.allow()
    clock.advance(30)
    assert breaker.allow()  # a second claim slot

    client = caches["default"]._cache.get_client(None)
    keys = client.keys(f"*pgi:breaker:{breaker.code}:*")
    assert len(keys) >= 4  # open, a failure bucket, two probe claims
    assert all(client.ttl(key) > 0 for key in keys), {key: client.ttl(key) for key in keys}


def test_the_state_is_shared_between_processes(new_breaker):
    code = new_breaker().code  # only for the reset at teardown; the other process uses the wall clock
    script = textwrap.dedent(
        f"""
        import django
        django.setup()
        from gateways.breaker import breaker_for
        breaker = breaker_for({code!r})
        for _ in range(breaker.policy.failure_threshold):
            breaker.record_failure()
        """
    )
    # Same environment: same REDIS_URL, PGI_CACHE_PREFIX and PYTEST_XDIST_WORKER, so the same keys.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pgi.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    breaker = breaker_for(code)
    assert breaker.snapshot().state is BreakerState.OPEN
    assert not breaker.allow()
    breaker.reset()


class BrokenCache:
    """A cache whose every operation fails, as when Redis is down."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return fail


def test_cache_errors_fail_open_with_a_warning(clock, caplog):
    breaker = CircuitBreaker("broken", POLICY, cache=BrokenCache(), clock=clock)

    with caplog.at_level(logging.WARNING, logger="gateways.breaker"):
        for _ in range(POLICY.failure_threshold + 1):
            breaker.record_failure()
        assert breaker.allow()
        breaker.record_success()
        breaker.reset()
        assert breaker.snapshot() == BreakerSnapshot(state=BreakerState.CLOSED, failures=0, open_until=None)

    assert len(caplog.records) == POLICY.failure_threshold + 5
    assert all(record.levelno == logging.WARNING and record.exc_info for record in caplog.records)
    assert "failing open" in caplog.records[0].getMessage()


def test_breaker_for_takes_the_policy_from_settings_with_overrides_per_gateway(settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 10, "open_seconds": 45}
    settings.PGI_CIRCUIT_BREAKER_OVERRIDES = {"stripe": {"open_seconds": 120}}

    assert breaker_for("stripe").policy == BreakerPolicy(failure_threshold=10, window_seconds=60, open_seconds=120)
    assert breaker_for("adyen").policy == BreakerPolicy(failure_threshold=10, window_seconds=60, open_seconds=45)


def test_breaker_for_uses_the_default_policy_without_settings(settings):
    for name in ("PGI_CIRCUIT_BREAKER", "PGI_CIRCUIT_BREAKER_OVERRIDES"):
        if hasattr(settings, name):
            delattr(settings, name)

    assert breaker_for("simulator").policy == BreakerPolicy()


@pytest.mark.parametrize("options", [{"failure_treshold": 3}, {"open_seconds": 0}, {"window_seconds": "60"}])
def test_breaker_for_refuses_a_bad_policy(settings, options):
    settings.PGI_CIRCUIT_BREAKER_OVERRIDES = {"simulator": options}

    with pytest.raises(ImproperlyConfigured, match="simulator"):
        breaker_for("simulator")
