"""What a request costs in SQL, pinned: a POST writes what must be durable before the gateway call in
one commit and the answer in a second; a GET by id and a page of the list are one SELECT each
(the key, its merchant and the routes come from the lookup cache, warm here)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateways.models import GatewayRoute
from payments.models import Payment

from ..conftest import client_for
from ..factories import PaymentFactory
from ..psycopg_commands import commands_sent

PAYMENTS_URL = "/v1/payments"
BODY = '{"amount": 50.00, "currency": "USD", "fromAccount": "account123", "toMerchant": "merchant456"}'


@pytest.fixture
def no_tombstones(monkeypatch):
    """Rows created by the test are cached at their first read, not two seconds later."""
    monkeypatch.setattr("pgi.lookups.TOMBSTONE_SECONDS", 0)


@pytest.fixture
def warm_api(no_tombstones, merchant_key):
    """A client whose key, merchant and routes are in the lookup cache."""
    client = client_for(merchant_key)
    assert client.get(PAYMENTS_URL).status_code == 200  # fills the cache; writes last_used_at once
    return client


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries]


def writes(sql: str) -> list[str]:
    """The writes of one writes_together statement, in order: "INSERT table" or "UPDATE table"."""
    return [f"{verb} {table}" for verb, table in re.findall(r'w\d+ AS \((INSERT|UPDATE) (?:INTO )?"(\w+)"', sql)]


@pytest.mark.django_db(transaction=True)
def test_a_payment_is_two_commits_around_the_gateway_call(merchant, warm_api):
    warm_api.post(PAYMENTS_URL, BODY, content_type="application/json")  # the routes' first read

    with CaptureQueriesContext(connection) as queries, commands_sent() as sent:
        response = warm_api.post(PAYMENTS_URL, BODY, content_type="application/json")

    assert response.status_code == 201 and response.json()["status"] == "Completed"
    # Django logs a BEGIN and a COMMIT for each transaction; the first is one statement, which
    # PostgreSQL runs as its own transaction: psycopg sends BEGIN and COMMIT for the second only.
    assert [command for command in sent if command in ("BEGIN", "COMMIT", "ROLLBACK")] == ["BEGIN", "COMMIT"]
    kinds = statements(queries)
    # Before the call, one statement (pgi.compiled.writes_together): the payment, its two history
    # lines, its two events, its operation. The simulator's own ledger row (one INSERT, its own
    # commit). After: the lock, the operations, then one statement: the attempt, the payment's
    # status, the operation's end, the history line, the event and its notification.
    assert kinds == ["BEGIN", "WITH", "COMMIT", "INSERT", "BEGIN", "SELECT", "SELECT", "WITH", "COMMIT"]
    together = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH")]
    assert [writes(sql) for sql in together] == [
        [
            "INSERT payments_payment",
            "INSERT payments_paymentstatuschange",
            "INSERT events_outboxevent",
            "INSERT events_outboxevent",
            "INSERT payments_gatewayoperation",
        ],
        [
            "INSERT payments_gatewayattempt",
            "UPDATE payments_payment",
            "UPDATE payments_gatewayoperation",
            "INSERT payments_paymentstatuschange",
            "INSERT events_outboxevent",
        ],
    ]


@pytest.mark.django_db(transaction=True)
def test_a_payment_routed_by_its_merchants_routes_costs_the_same(no_tombstones, merchant, warm_api):
    GatewayRoute.objects.create(merchant=merchant, currency="USD", gateway="simulator", priority=1)
    warm_api.post(PAYMENTS_URL, BODY, content_type="application/json")

    with CaptureQueriesContext(connection) as queries:
        response = warm_api.post(PAYMENTS_URL, BODY, content_type="application/json")

    assert response.status_code == 201
    assert len(queries.captured_queries) == 9


def test_a_payment_by_id_is_one_select(merchant, warm_api):
    payment = PaymentFactory(merchant=merchant)

    with CaptureQueriesContext(connection) as queries:
        response = warm_api.get(f"{PAYMENTS_URL}/{payment.id}")

    assert response.status_code == 200 and response.json()["id"] == payment.id
    assert statements(queries) == ["SELECT"]


def test_a_page_of_fifty_is_one_select_whatever_its_rows(merchant, warm_api):
    for _ in range(50):
        PaymentFactory(merchant=merchant)

    with CaptureQueriesContext(connection) as queries:
        response = warm_api.get(PAYMENTS_URL)

    assert len(response.json()["results"]) == 50
    assert statements(queries) == ["SELECT"]


def test_the_status_of_a_payment_is_one_select(merchant, warm_api):
    payment = PaymentFactory(merchant=merchant)

    with CaptureQueriesContext(connection) as queries:
        response = warm_api.get(f"{PAYMENTS_URL}/{payment.id}/status")

    assert response.status_code == 200
    assert len(queries.captured_queries) == 1
    assert Payment.objects.filter(pk=payment.id).exists()
