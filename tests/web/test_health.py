import pytest

pytestmark = pytest.mark.django_db


def test_health_reports_every_backing_service_up(client):
    response = client.get("/health")

    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert set(checks) == {"database", "cache", "celeryBroker", "kafka"}
    assert checks["database"]["detail"] == "postgresql"
    assert checks["cache"]["detail"] == "RedisCache"
    assert "broker(s)" in checks["kafka"]["detail"]


def test_health_is_503_and_names_the_failing_service(client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"

    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["kafka"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
