"""Rows that every request reads and that rarely change (an API key with its merchant, a merchant by
code, a merchant's gateway routes), kept in the shared cache so that a request reads them without SQL.

Every process shares the one cache (Redis; var/cache.sqlite3 without it), so forgetting an entry
takes effect in every process at once: a revoked key is refused by the next request, an edited
route routes the next payment. Writers forget what they change (`lookup_forget`, from signal
receivers and from the services that write with `QuerySet.update`), before and again after their
commit. Forgetting leaves a short-lived tombstone rather than deleting: a reader that read the old
row just before the commit finds the tombstone and cannot store that old row back (entries are
stored with `add`, which never overwrites). While the tombstone lives, readers go to the database.

A cache that fails is skipped (the database answers), as the breaker and the throttle fail open.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long an entry lives without an edit: a bound on any staleness a missed forget could cause.
TTL_SECONDS = 300
# How long a forgotten entry stays forgotten (no reader may store it back meanwhile).
TOMBSTONE_SECONDS = 2
TOMBSTONE = "forgotten"
# Part of every key: by default a digest of the cached models' fields, so every process of one
# release names an entry alike, and a release that changes those models never reads the pickled rows
# of the one before. The test suite sets it per test (each test's rows are rolled back, the cache
# is shared).
namespace: str | None = None


def _namespace() -> str:
    global namespace
    if namespace is None:
        from django.apps import apps

        shape = [
            (model._meta.label, [field.attname for field in model._meta.concrete_fields])
            for model in (apps.get_model("merchants", name) for name in ("ApiKey", "Merchant", "MerchantCurrency"))
        ]
        namespace = hashlib.sha256(repr(shape).encode()).hexdigest()[:12]
    return namespace


def _key(kind: str, ident) -> str:
    return f"lookup:{_namespace()}:{kind}:{ident}"


def lookup(kind: str, ident, build: Callable[[], T | None]) -> T | None:
    """The cached value of (kind, ident), or build() from the database and keep it (None is not kept)."""
    key = _key(kind, ident)
    try:
        value = cache.get(key)
    except Exception:  # every backend raises its own errors; the database still answers
        logger.warning("lookup cache unreadable; reading %s from the database", kind, exc_info=True)
        return build()
    if value is not None and value != TOMBSTONE:
        return value
    built = build()
    if built is not None and value is None:
        try:
            cache.add(key, built, timeout=TTL_SECONDS)
        except Exception:
            logger.warning("lookup cache unwritable", exc_info=True)
    return built


def lookup_forget(kind: str, idents: Iterable) -> None:
    """Forget entries now and again when the current transaction commits (see the module's docstring)."""
    keys = [_key(kind, ident) for ident in idents]
    if not keys:
        return

    def forget() -> None:
        try:
            cache.set_many(dict.fromkeys(keys, TOMBSTONE), timeout=TOMBSTONE_SECONDS)
        except Exception:
            logger.warning("lookup cache unwritable: %s may stay stale for up to %ss", keys, TTL_SECONDS, exc_info=True)

    forget()
    transaction.on_commit(forget)
