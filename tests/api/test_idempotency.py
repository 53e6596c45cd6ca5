"""Idempotency-Key on POST: replay, reuse refused, scoped per merchant, safe under concurrency, purged."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatusChange
from pgi.api.models import IdempotencyRecord
from pgi.api.tasks import idempotency_keys_purge
from pgi.merchants.services import api_key_create

from ..conftest import client_for
from ..gateways.connectors import BrokenAfterChargingConnector
from .helpers import PAYMENTS_URL, VALIDATE_URL, assert_error, loads, payment_body, post_json

KEY = "Idempotency-Key"


def post_with_key(client, key, body=None):
    return post_json(client, PAYMENTS_URL, body if body is not None else payment_body(), **{KEY: key})


@pytest.mark.django_db
def test_replay_returns_the_stored_response_and_creates_nothing(api):
    first = post_with_key(api, "order-1")
    assert first.status_code == 201, first.content
    history = PaymentStatusChange.objects.count()

    replay = post_with_key(api, "order-1")

    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Content-Type"].startswith("application/json")
    assert "Idempotent-Replayed" not in first.headers
    assert Payment.objects.count() == 1
    assert SimulatorCharge.objects.count() == 1
    assert PaymentStatusChange.objects.count() == history


@pytest.mark.django_db
def test_replay_is_the_first_response_even_after_the_payment_changed(api):
    first = post_with_key(api, "order-1")
    Payment.objects.filter(pk=first.json()["id"]).update(description="changed since")

    replay = post_with_key(api, "order-1")

    assert replay.content == first.content
    assert replay.json()["description"] is None


@pytest.mark.django_db
def test_replay_ignores_the_order_of_keys_in_the_body(api):
    first = post_json(
        api, PAYMENTS_URL, '{"amount": 50.00, "currency": "USD", "fromAccount": "account123"}', **{KEY: "order-1"}
    )

    replay = post_json(
        api, PAYMENTS_URL, '{"fromAccount": "account123", "currency": "USD", "amount": 50.00}', **{KEY: "order-1"}
    )

    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.content == first.content


@pytest.mark.django_db
def test_replay_ignores_how_the_amount_is_written(api):
    first = post_json(api, PAYMENTS_URL, '{"amount": 50.00, "currency": "USD", "fromAccount": "account123"}', **{KEY: "o"})

    replay = post_json(api, PAYMENTS_URL, '{"amount": 5E+1, "currency": "USD", "fromAccount": "account123"}', **{KEY: "o"})

    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.content == first.content
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_refused_request_is_replayed_as_refused(api):
    first = post_with_key(api, "order-1", payment_body(currency="GBP"))
    assert first.status_code == 422

    replay = post_with_key(api, "order-1", payment_body(currency="GBP"))

    assert replay.status_code == 422
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_same_key_with_another_body_is_refused(api):
    first = post_with_key(api, "order-1")

    response = post_with_key(api, "order-1", payment_body(amount=Decimal("51.00")))

    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED", field=KEY)
    assert "Idempotent-Replayed" not in response.headers
    assert list(Payment.objects.values_list("id", flat=True)) == [first.json()["id"]]


@pytest.mark.django_db
def test_same_key_on_another_endpoint_is_refused(api):
    post_json(api, VALIDATE_URL, payment_body(), **{KEY: "order-1"})

    response = post_with_key(api, "order-1")

    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_keys_are_scoped_per_merchant(api, other_merchant):
    _, other_key = api_key_create(name="theirs", merchant=other_merchant)

    mine = post_with_key(api, "order-1", payment_body(toMerchant=...))
    theirs = post_with_key(client_for(other_key), "order-1", payment_body(toMerchant=...))

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert sorted(Payment.objects.values_list("merchant__code", flat=True)) == ["merchant456", "merchant789"]


@pytest.mark.django_db
def test_two_keys_of_one_merchant_share_the_scope(merchant, api):
    _, second_key = api_key_create(name="second", merchant=merchant)
    first = post_with_key(api, "order-1")

    replay = post_with_key(client_for(second_key), "order-1")

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_without_the_header_every_post_is_a_new_payment(api):
    first = post_json(api, PAYMENTS_URL, payment_body())
    second = post_json(api, PAYMENTS_URL, payment_body())

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert Payment.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.fixture
def gateway_broken_after_charging(settings):
    settings.PGI_GATEWAYS = {"broken": {"class": "tests.gateways.connectors.BrokenAfterChargingConnector"}}
    settings.PGI_DEFAULT_GATEWAY = "broken"
    BrokenAfterChargingConnector.charged = []
    yield BrokenAfterChargingConnector
    BrokenAfterChargingConnector.charged = []


@pytest.mark.django_db
def test_a_server_error_is_replayed_so_a_retry_never_charges_twice(api, gateway_broken_after_charging):
    failed = post_with_key(api, "order-1")
    assert_error(failed, 500, "INTERNAL_ERROR")

    retried = post_with_key(api, "order-1")

    assert retried.status_code == 500
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.content == failed.content
    assert Payment.objects.count() == 1
    assert len(gateway_broken_after_charging.charged) == 1


@pytest.mark.django_db
def test_the_record_keeps_the_response_for_the_configured_time(api, settings):
    settings.PGI_IDEMPOTENCY_TTL_HOURS = 24
    before = timezone.now()

    response = post_with_key(api, "order-1")

    record = IdempotencyRecord.objects.get()
    assert record.response_status == 201
    assert loads(record.response_body) == loads(response.content)
    assert before + timedelta(hours=24) <= record.expires_at <= timezone.now() + timedelta(hours=24)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_posts_with_one_key_create_exactly_one_payment(merchant_key):
    threads_count = 20
    barrier = threading.Barrier(threads_count)
    responses = [None] * threads_count
    errors = []

    def post(index):
        try:
            client = client_for(merchant_key)
            barrier.wait(timeout=30)
            responses[index] = post_with_key(client, "same-order")
        except Exception as exc:  # surfaced below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert Payment.objects.count() == 1
    assert SimulatorCharge.objects.count() == 1
    payment_id = Payment.objects.get().id
    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(created) == 1
    for response in responses:
        if response.status_code == 201:
            assert response.json()["id"] == payment_id
        else:
            assert_error(response, 409, "IDEMPOTENCY_IN_PROGRESS")


@pytest.mark.django_db
def test_purge_deletes_only_expired_records(merchant):
    now = timezone.now()
    for key, expires_at in [("old", now - timedelta(seconds=1)), ("older", now - timedelta(days=2)), ("live", now + timedelta(hours=1))]:
        IdempotencyRecord.objects.create(
            scope=f"m:{merchant.pk}",
            key=key,
            request_hash="x",
            method="POST",
            path=PAYMENTS_URL,
            lease_expires_at=expires_at,
            expires_at=expires_at,
        )

    deleted = idempotency_keys_purge.apply().get()

    assert deleted == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live"]


@pytest.mark.django_db
def test_an_expired_key_can_be_used_again_for_another_request(api, merchant):
    first = post_with_key(api, "order-1")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    again = post_with_key(api, "order-1", payment_body(amount=Decimal("75.00")))

    assert again.status_code == 201, again.content
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    record = IdempotencyRecord.objects.get()
    assert loads(record.response_body)["id"] == again.json()["id"]
    assert record.expires_at > timezone.now()
