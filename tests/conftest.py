"""Shared fixtures. Tests run on real PostgreSQL and Redis (from DATABASE_URL and REDIS_URL); a test
that talks to Kafka asks for `kafka_bootstrap`, which starts the bundled Kafka-compatible broker once
per test process. Every other test sees an address where nothing listens."""

import os

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from pgi.embedded_broker import start_broker
from pgi.merchants.principals import Principal
from pgi.merchants.scopes import ALL_SCOPES
from pgi.merchants.services import api_key_create

from .factories import MerchantFactory


# Nothing listens on port 1: a test that reaches Kafka without asking for the broker fails at once
# instead of passing against whatever happens to listen on the configured address.
KAFKA_NOWHERE = "127.0.0.1:1"


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """Tests hash many passwords (users, sign-ins); the production hasher is slow on purpose."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database as pytest-django makes it, with TRUNCATE of the audit trail allowed: Django
    empties the database with TRUNCATE after each transactional test, and the audit trail's trigger
    refuses TRUNCATE unless the session allows it (pgi/audit/migrations/0001)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            name = connection.settings_dict["NAME"]
            cursor.execute(f"ALTER DATABASE {connection.ops.quote_name(name)} SET pgi.audit_truncate = 'allow'")
            cursor.execute("SET pgi.audit_truncate = 'allow'")
    yield


@pytest.fixture(autouse=True)
def lookup_namespace():
    """Each test reads its own rows: the lookup cache (pgi.lookups) is shared through Redis, but a
    test's rows are rolled back and their codes (merchant456) come back with other ids."""
    import secrets

    from pgi import lookups

    lookups.namespace = secrets.token_hex(6)
    yield


@pytest.fixture(scope="session", autouse=True)
def kafka_nowhere():
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=KAFKA_NOWHERE):
        yield


@pytest.fixture(scope="session")
def kafka_broker():
    """The broker address: an external one if KAFKA_BOOTSTRAP_SERVERS is set, else our own Tansu."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    process, address = start_broker()
    try:
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def kafka_bootstrap(kafka_broker, settings):
    """A running broker, and KAFKA_BOOTSTRAP_SERVERS pointing at it for this test only."""
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker
    return kafka_broker


@pytest.fixture(scope="session")
def celery_purged():
    """Drop tasks left in this worker's queue by earlier runs before a real Celery worker starts."""
    from pgi.celery import app

    app.control.purge()


@pytest.fixture
def celery_worker(transactional_db, celery_purged):
    """A real Celery worker consuming this test process's queue, in a thread, against Redis."""
    from celery.contrib.testing.worker import start_worker

    from pgi.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def merchant(db):
    return MerchantFactory(code="merchant456", name="Demo Shop")


@pytest.fixture
def other_merchant(db):
    return MerchantFactory(code="merchant789", name="Other Shop")


# The keys of the fixtures hold every scope: tests of an endpoint are not about scopes
# (tests/merchants/test_scopes.py is).
@pytest.fixture
def merchant_key(merchant):
    api_key, full_key = api_key_create(name="checkout", merchant=merchant, scopes=ALL_SCOPES)
    return full_key


@pytest.fixture
def platform_key(db):
    api_key, full_key = api_key_create(name="tps", merchant=None, scopes=ALL_SCOPES)
    return full_key


def client_for(full_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    return client


@pytest.fixture
def api(merchant_key):
    """An API client authenticated as merchant456."""
    return client_for(merchant_key)


@pytest.fixture
def platform_api(platform_key):
    return client_for(platform_key)


@pytest.fixture
def principal(merchant):
    api_key, _ = api_key_create(name="svc", merchant=merchant)
    return Principal(api_key=api_key)


GATEWAY_CODES_IN_TESTS = ("simulator", "simulator_b", "stripe", "adyen")


@pytest.fixture(autouse=True)
def gateway_state_reset():
    """Breakers and simulator outages live in Redis and would leak from one test into the next."""
    from gateways.breaker import breaker_for

    def reset():
        for code in GATEWAY_CODES_IN_TESTS:
            breaker_for(code).reset()
            simulator_outage_set(code, False)

    reset()
    yield
    reset()


def simulator_outage_set(code: str, down: bool) -> None:
    from gateways.simulator.connector import simulator_outage_set as switch

    switch(code, down)


def simulator_options(**overrides) -> dict:
    return {**settings.PGI_GATEWAYS["simulator"], **overrides}


@pytest.fixture
def two_simulators(settings, merchant):
    """Two simulator gateways, `simulator` first and `simulator_b` second, for merchant456 in USD."""
    from gateways.models import GatewayRoute

    settings.PGI_GATEWAYS = {"simulator": simulator_options(), "simulator_b": simulator_options()}
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=1)
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator_b", priority=2)
    return ("simulator", "simulator_b")
