"""/health: status for anyone; which backing service failed and why only for staff and token holders."""

import pytest

# The kafka check talks to a real broker; kafka_down points it where nothing listens.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("kafka_bootstrap")]

TOKEN = "health-token-for-monitoring-0123456789"
BACKENDS = {"database", "cache", "celeryBroker", "kafka"}


@pytest.fixture
def health_token(settings):
    settings.PGI_HEALTH_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def kafka_down(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"


def test_public_answer_is_status_only(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_public_answer_when_a_backend_fails_is_503_with_no_detail(client, kafka_down):
    response = client.get("/health")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert b"127.0.0.1:1" not in response.content
    assert b"Kafka" not in response.content


def test_token_holder_sees_every_backing_service(client, health_token):
    response = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == BACKENDS
    assert checks["database"]["detail"] == "postgresql"
    assert checks["cache"]["detail"] == "RedisCache"
    assert "broker(s)" in checks["kafka"]["detail"]


def test_token_holder_is_told_which_backend_failed(client, health_token, kafka_down):
    response = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["kafka"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_staff_session_sees_the_details(admin_client):
    response = admin_client.get("/health")

    assert response.status_code == 200
    assert set(response.json()["checks"]) == BACKENDS


def test_non_staff_session_gets_status_only(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("clerk", password="not-staff-pass-1"))

    response = client.get("/health")

    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN, ""],
    ids=["longer", "shorter", "empty", "other-scheme", "no-scheme", "absent"],
)
def test_wrong_or_missing_token_gets_status_only(client, health_token, authorization):
    response = client.get("/health", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_without_a_configured_token_no_bearer_value_opens_the_details(client, settings):
    settings.PGI_HEALTH_TOKEN = ""

    response = client.get("/health", HTTP_AUTHORIZATION="Bearer ")

    assert response.json() == {"status": "ok"}


def test_checks_run_at_most_once_per_cache_period(client, settings, monkeypatch):
    from pgi.web import health

    calls = []
    monkeypatch.setitem(health.CHECKS, "kafka", lambda: calls.append(1) or "counted")
    settings.PGI_HEALTH_CACHE_SECONDS = 60

    answers = [client.get("/health").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert len(calls) == 1


def test_a_hanging_backend_holds_one_thread_while_other_callers_get_the_last_answer(client, settings, monkeypatch):
    import threading
    import time

    from pgi.web import health

    settings.PGI_HEALTH_CACHE_SECONDS = 0
    assert client.get("/health").status_code == 200  # a first answer to fall back on
    release = threading.Event()
    monkeypatch.setitem(health.CHECKS, "kafka", lambda: release.wait(10) and "late")
    refreshing = threading.Thread(target=health.checks_memo.get)
    refreshing.start()
    try:
        time.sleep(0.2)  # the refresh now hangs on the backend
        started = time.monotonic()
        response = client.get("/health")
        waited = time.monotonic() - started
    finally:
        release.set()
        refreshing.join(10)

    assert response.status_code == 200
    assert waited < 2


def test_token_holder_sees_the_outbox_relay_lag_which_never_fails_health(client, health_token):
    from datetime import timedelta

    from django.utils import timezone

    from pgi.events.models import OutboxEvent

    row = OutboxEvent.objects.create(topic="payments", key="pay_1", event_type="payment.completed", payload={})
    OutboxEvent.objects.filter(id=row.id).update(created_at=timezone.now() - timedelta(hours=2))
    OutboxEvent.objects.create(topic="payments", key="pay_2", event_type="payment.completed", payload={})

    response = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    lag = response.json()["outboxRelay"]
    assert lag["unsent"] == 2
    assert 7200 <= lag["oldestUnsentSeconds"] < 7300


def test_public_answer_does_not_show_the_outbox_relay_lag(client):
    assert "outboxRelay" not in client.get("/health").json()
