"""Stripe and Adyen behind their local fakes, routed for merchant456: Stripe takes its USD payments,
Adyen its EUR ones. The simulator stays configured as the default gateway."""

import pytest

from gateways.models import GatewayRoute

from ..conftest import simulator_options
from ..gateways.fakes.adyen_server import running_fake_adyen
from ..gateways.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, running_fake_stripe


def stripe_options(url: str) -> dict:
    return {
        "class": "gateways.stripe.connector.StripeConnector",
        "api_key": API_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": url,
        "timeout": 5.0,
        "connect_timeout": 1.0,
    }


@pytest.fixture
def stripe_gateway(settings, merchant):
    with running_fake_stripe() as fake:
        settings.PGI_GATEWAYS = {"simulator": simulator_options(), "stripe": stripe_options(fake.url)}
        GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="stripe", priority=1)
        yield fake


@pytest.fixture
def adyen_gateway(settings, merchant):
    with running_fake_adyen() as fake:
        settings.PGI_GATEWAYS = {
            "simulator": simulator_options(),
            "adyen": {"class": "gateways.adyen.connector.AdyenConnector", **fake.connector_options()},
        }
        GatewayRoute.objects.create(merchant=merchant, currency="EUR", gateway="adyen", priority=1)
        yield fake


@pytest.fixture
def migrated_back(transactional_db):
    """For a test that migrates the database to a past state: afterwards it is migrated forward
    to the latest migrations again, so the tests after it on this worker find today's tables."""
    yield
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
