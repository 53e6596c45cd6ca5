"""A Django cache in one SQLite file, shared by every process on the machine: `make run` without Redis.

What PGI keeps in its cache is state that every process must see alike: the circuit breakers, the
simulator's outage switch, the API throttle, the admin's key-issue tokens. The breaker depends on
`add` (create only if missing: one probe, one opening) and `incr` (count without losing an update)
being atomic across processes. Here every read-modify-write (add, incr) runs in a `BEGIN IMMEDIATE`
transaction, which takes the file's write lock before it reads, so no other process can write in
between; every other operation is a single statement, atomic by itself. Values are pickled, as
Django's own backends do; an expired entry reads as missing and is deleted on later writes.

Django's file cache cannot serve here: its add and incr read and then write separate files.
"""

import os
import pickle
import sqlite3
import threading
import time
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

# Waiting for another process's write lock: writes take microseconds, so this is only ever reached
# when something is stuck, and then the caller's error handling (the breaker fails open) applies.
_LOCK_TIMEOUT_SECONDS = 5
# Expired entries are deleted on every this many writes of one connection.
_CULL_EVERY = 100
# SQLite's default bound on the parameters of one statement is 999 (before 3.32).
_CHUNK = 500


class SQLiteCache(BaseCache):
    """LOCATION: the database file's path; its directory must exist."""

    def __init__(self, location: str, params: dict):
        super().__init__(params)
        self._path = location
        # One connection per thread and process: sqlite3 connections may not cross threads, and a
        # forked child must not use its parent's.
        self._local = threading.local()
        self._writes = 0

    # --- Django's cache API -----------------------------------------------------------------

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        with self._write() as db:
            if self._live(db, [key]):
                return False
            self._store(db, key, value, timeout)
            return True

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        found = self._live(self._db(), [key])
        return pickle.loads(found[key]) if key in found else default

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        key = self.make_and_validate_key(key, version=version)
        with self._write() as db:
            self._store(db, key, value, timeout)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        cursor = self._db().execute(
            "UPDATE cache SET expires = ? WHERE key = ? AND (expires IS NULL OR expires > ?)",
            (self.get_backend_timeout(timeout), key, time.time()),
        )
        return cursor.rowcount == 1

    def delete(self, key, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._db().execute("DELETE FROM cache WHERE key = ?", (key,)).rowcount == 1

    def get_many(self, keys, version=None) -> dict:
        names = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._live(self._db(), list(names))
        return {names[name]: pickle.loads(value) for name, value in found.items()}

    def delete_many(self, keys, version=None) -> None:
        names = [self.make_and_validate_key(key, version=version) for key in keys]
        # One statement per chunk: the usual few keys go at once, as Redis's DEL does.
        db = self._db()
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            db.execute(f"DELETE FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk)

    def has_key(self, key, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(self._live(self._db(), [key]))

    def incr(self, key, delta=1, version=None):
        """Raises ValueError when the key is missing, as every Django cache does."""
        name = self.make_and_validate_key(key, version=version)
        with self._write() as db:
            found = self._live(db, [name])
            if name not in found:
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(found[name]) + delta
            db.execute("UPDATE cache SET value = ? WHERE key = ?", (pickle.dumps(value, pickle.HIGHEST_PROTOCOL), name))
            return value

    def clear(self) -> None:
        self._db().execute("DELETE FROM cache")

    def close(self, **kwargs) -> None:
        """Kept open: Django closes caches after every request, and reopening costs more than it saves."""

    # --- internals --------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if getattr(self._local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self._path, timeout=_LOCK_TIMEOUT_SECONDS, isolation_level=None)
            # WAL: readers never wait for the writer. NORMAL: a power cut may lose the last writes,
            # never corrupt the file, which is all a cache needs.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)")
            connection.execute("CREATE INDEX IF NOT EXISTS cache_expires ON cache (expires)")
            self._local.connection, self._local.pid = connection, os.getpid()
        return self._local.connection

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction: the write lock is held from the first read to the commit."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            self._writes += 1
            if self._writes % _CULL_EVERY == 0:
                db.execute("DELETE FROM cache WHERE expires <= ?", (time.time(),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _live(self, db: sqlite3.Connection, names: list[str]) -> dict[str, bytes]:
        """The pickled values of those names that exist and have not expired."""
        found = {}
        now = time.time()
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            rows = db.execute(
                f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})"
                " AND (expires IS NULL OR expires > ?)",
                [*chunk, now],
            )
            found.update(rows)
        return found

    def _store(self, db: sqlite3.Connection, key: str, value, timeout) -> None:
        db.execute(
            "INSERT OR REPLACE INTO cache (key, value, expires) VALUES (?, ?, ?)",
            (key, pickle.dumps(value, pickle.HIGHEST_PROTOCOL), self.get_backend_timeout(timeout)),
        )
