"""The counters every process adds to: in Redis, or in the SQLite cache of `make run`."""

import pytest

from pgi.observability.shared_counters import counter_add, counter_values


@pytest.fixture(params=["redis", "sqlite"])
def shared_cache(request, settings, tmp_path):
    if request.param == "sqlite":
        settings.CACHES = {"default": {"BACKEND": "pgi.sqlite_cache.SQLiteCache", "LOCATION": str(tmp_path / "cache.sqlite3")}}
    return request.param


def test_counts_add_up_by_label_values(shared_cache):
    name = f"test_counts_{shared_cache}"
    before = counter_values(name)

    counter_add(name, ("simulator", "Completed"))
    counter_add(name, ("simulator", "Completed"))
    counter_add(name, ("simulator", "Failed"), 3)
    after = counter_values(name)

    assert after[("simulator", "Completed")] - before.get(("simulator", "Completed"), 0) == 2
    assert after[("simulator", "Failed")] - before.get(("simulator", "Failed"), 0) == 3


def test_a_cache_that_is_down_loses_the_count_and_raises_nothing(settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 0.2}}
    }

    counter_add("test_counts_down", ("x",))  # no exception

    with pytest.raises(Exception):
        counter_values("test_counts_down")
