"""Readiness of PGI's backing services, for operators, `make run` and load balancers."""

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


def run_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = {"ok": True, "detail": str(check())}
        except Exception as exc:  # a health check reports failures, it does not raise them
            results[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return results
