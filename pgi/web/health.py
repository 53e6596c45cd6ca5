"""Readiness of PGI's backing services, for operators, `make run` and load balancers.

Anyone may ask whether PGI is up; which backend failed and why (names, addresses, error text)
is for staff and for monitoring that holds PGI_HEALTH_TOKEN. `/health` runs every check; the
orchestrator's `/readyz` those named in PGI_READY_CHECKS (not Kafka: payments go on while it is
down, their events wait in the outbox), and `/healthz` none.
"""

import hmac
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def check_cache() -> str:
    cache.set("pgi:health", "ok", 10)
    if cache.get("pgi:health") != "ok":
        raise RuntimeError("cache did not return what was written")
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def check_celery_broker() -> str:
    from pgi.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_type


def check_kafka() -> str:
    from confluent_kafka.admin import AdminClient

    client = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "socket.timeout.ms": 3000})
    metadata = client.list_topics(timeout=5)
    return f"{len(metadata.brokers)} broker(s) at {settings.KAFKA_BOOTSTRAP_SERVERS}"


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "celeryBroker": check_celery_broker,
    "kafka": check_kafka,
}


def outbox_relay_detail() -> dict:
    """How far the outbox relay is behind. Shown with the checks but never a reason for 503: the
    events wait in the outbox while the relay is down, and payments go on; monitoring alerts on the age."""
    from pgi.events.selectors import relay_lag

    try:
        unsent, oldest_seconds = relay_lag()
    except Exception as exc:  # reported, not raised, like a check
        return {"detail": f"{type(exc).__name__}: {exc}"}
    return {"unsent": unsent, "oldestUnsentSeconds": round(oldest_seconds, 1)}


def run_checks(names: list[str] | None = None) -> dict[str, dict]:
    """Each check's {"ok", "detail"}: all of CHECKS, or those in `names`."""
    results = {}
    for name, check in CHECKS.items():
        if names is not None and name not in names:
            continue
        try:
            results[name] = {"ok": True, "detail": str(check())}
        except Exception as exc:  # a health check reports failures, it does not raise them
            results[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return results


class _Memo:
    """The last results, kept PGI_HEALTH_CACHE_SECONDS. While one thread of the process refreshes
    them, the others answer from the last results instead of waiting: a backing service that
    hangs holds one web thread, not every thread a burst of probes (anyone may call /health) takes."""

    def __init__(self, run=run_checks):
        self._run = run
        self._lock = threading.Lock()
        self._results: dict[str, dict] | None = None
        self._at = 0.0

    def get(self) -> dict[str, dict]:
        fresh_for = settings.PGI_HEALTH_CACHE_SECONDS
        if self._results is not None and time.monotonic() - self._at < fresh_for:
            return self._results
        if self._lock.acquire(blocking=self._results is None):
            try:
                results = self._run()
                self._results, self._at = results, time.monotonic()
                return results
            finally:
                self._lock.release()
        return self._results

    def clear(self) -> None:
        with self._lock:
            self._results, self._at = None, 0.0


checks_memo = _Memo()
ready_memo = _Memo(lambda: run_checks(settings.PGI_READY_CHECKS))


def may_see_health_details(request) -> bool:
    """A staff session, or `Authorization: Bearer <PGI_HEALTH_TOKEN>` (compared in constant time)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.PGI_HEALTH_TOKEN
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
