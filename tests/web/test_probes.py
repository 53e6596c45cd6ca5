"""/healthz and /readyz, the orchestrator's probes: answered at any host and over plain HTTP."""

import pytest
from django.test import Client

from pgi.celery import app
from pgi.web.health import ready_memo

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def fresh_readiness():
    ready_memo.clear()
    yield
    ready_memo.clear()


@pytest.fixture
def broker_down(monkeypatch):
    """The Celery broker at a closed port, for the checks only: app.conf stays as it is (a pool or
    a worker of a later test built from it would keep the closed address)."""
    connection_for_write = app.connection_for_write
    monkeypatch.setattr(app, "connection_for_write", lambda *args, **kwargs: connection_for_write(CLOSED))


@pytest.fixture
def pod_address(settings):
    """A probe as the kubelet sends it: the pod's address as Host, plain HTTP under PGI_HTTPS."""
    settings.SECURE_SSL_REDIRECT = True
    return Client(HTTP_HOST="10.1.2.3:8000")


def test_healthz_answers_without_touching_any_backing_service(pod_address, settings):
    # No django_db mark: any database access would raise. And the cache points nowhere.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": CLOSED}}

    response = pod_address.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_the_database_the_cache_and_the_broker_answer(pod_address):
    response = pod_address.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_cache_is_down(pod_address, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": CLOSED, "OPTIONS": {"socket_connect_timeout": 0.5}}
    }

    response = pod_address.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_celery_broker_is_down_and_says_why_to_the_health_token(pod_address, settings, broker_down):
    settings.PGI_HEALTH_TOKEN = "health-token"

    anonymous = pod_address.get("/readyz")
    ready_memo.clear()
    monitoring = pod_address.get("/readyz", HTTP_AUTHORIZATION="Bearer health-token")

    assert anonymous.status_code == monitoring.status_code == 503
    assert anonymous.json() == {"status": "unavailable"}
    checks = monitoring.json()["checks"]
    assert set(checks) == {"database", "cache", "celeryBroker"}  # no Kafka: its events wait in the outbox
    assert (checks["database"]["ok"], checks["cache"]["ok"], checks["celeryBroker"]["ok"]) == (True, True, False)


@pytest.mark.django_db
def test_readyz_checks_only_what_pgi_ready_checks_names(pod_address, settings, broker_down):
    settings.PGI_READY_CHECKS = ["database"]

    assert pod_address.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_health_still_answers_at_its_own_path(client):
    response = client.get("/health")

    assert response.status_code in (200, 503)
    assert set(response.json()) == {"status"}
