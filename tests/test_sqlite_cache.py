"""The SQLite file cache of `make run` without Redis: Django's cache semantics, and add and incr
atomic across processes (the circuit breaker's single probe and failure count rely on both)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateways.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from pgi.sqlite_cache import SQLiteCache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def location(tmp_path):
    return str(tmp_path / "cache.sqlite3")


@pytest.fixture
def cache(location):
    return SQLiteCache(location, {"KEY_PREFIX": "t"})


def test_set_get_and_delete_round_trip_any_picklable_value(cache):
    cache.set("float", 1_700_000_000.25, timeout=60)
    cache.set("flag", True, timeout=None)
    cache.set("list", [1, "two"], timeout=60)

    assert cache.get_many(["float", "flag", "list", "missing"]) == {"float": 1_700_000_000.25, "flag": True, "list": [1, "two"]}
    assert cache.get("missing", "default") == "default"
    assert cache.delete("flag") is True and cache.delete("flag") is False
    cache.delete_many(["float", "list"])
    assert cache.get_many(["float", "list"]) == {}


def test_add_writes_only_a_missing_or_expired_key(cache):
    assert cache.add("k", 1, timeout=60) is True
    assert cache.add("k", 2, timeout=60) is False
    assert cache.get("k") == 1
    cache.set("old", "stale", timeout=0)  # expires at once
    assert cache.get("old") is None
    assert cache.add("old", "fresh", timeout=60) is True
    assert cache.get("old") == "fresh"


def test_incr_counts_an_existing_key_and_refuses_a_missing_one(cache):
    cache.add("n", 1, timeout=60)

    assert cache.incr("n") == 2
    assert cache.incr("n", 5) == 7
    with pytest.raises(ValueError):
        cache.incr("absent")


def test_touch_gives_a_live_key_a_new_expiry_and_an_expired_one_stays_gone(cache):
    cache.set("k", "v", timeout=1)
    assert cache.touch("k", 60) is True
    cache.set("gone", "v", timeout=0)
    assert cache.touch("gone", 60) is False

    time.sleep(1.1)
    assert cache.get("k") == "v"
    assert cache.get("gone") is None


def test_two_cache_objects_on_one_file_see_each_others_writes(location):
    first, second = SQLiteCache(location, {}), SQLiteCache(location, {})

    first.set("pgi:simulator:simulator:outage", True, timeout=None)

    assert second.get("pgi:simulator:simulator:outage") is True


WORKER = textwrap.dedent(
    """
    import sys
    from django.conf import settings
    settings.configure()
    from pgi.sqlite_cache import SQLiteCache
    cache = SQLiteCache(sys.argv[1], {})
    wins = 0
    for i in range(int(sys.argv[2])):
        if not cache.add("counter", 1, timeout=60):
            cache.incr("counter")
        wins += cache.add(f"slot:{i}", sys.argv[3], timeout=60)
    print(wins)
    """
)


def test_add_and_incr_are_atomic_across_processes(location):
    rounds, processes = 150, 4
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, location, str(rounds), str(n)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for n in range(processes)
    ]
    wins = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        wins.append(int(out))

    cache = SQLiteCache(location, {})
    assert cache.get("counter") == rounds * processes  # no increment lost
    assert sum(wins) == rounds  # each slot claimed by exactly one process


def test_a_breaker_on_the_file_cache_opens_for_every_process(location):
    policy = BreakerPolicy(failure_threshold=3, window_seconds=60, open_seconds=30)
    here = CircuitBreaker("simulator", policy, cache=SQLiteCache(location, {}))
    script = textwrap.dedent(
        """
        import sys
        from django.conf import settings
        settings.configure()
        from gateways.breaker import BreakerPolicy, CircuitBreaker
        from pgi.sqlite_cache import SQLiteCache
        breaker = CircuitBreaker("simulator", BreakerPolicy(3, 60, 30), cache=SQLiteCache(sys.argv[1], {}))
        for _ in range(3):
            breaker.record_failure()
        """
    )

    subprocess.run([sys.executable, "-c", script, location], cwd=ROOT, check=True, timeout=60, env=dict(os.environ))

    assert here.snapshot().state is BreakerState.OPEN
    assert here.allow() is False


def test_one_cache_object_serves_many_threads_at_once(cache):
    import threading

    cache.add("counter", 0, timeout=60)
    errors = []

    def count():
        try:
            for _ in range(50):
                cache.incr("counter")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert cache.get("counter") == 200
