"""Idempotency-Key on POST: replay, reuse refused by meaning, scoped per merchant, safe under
concurrency and after a crash (the claim's lease and its link to the payment), bounded, purged."""

import threading
import time
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from gateways.models import SimulatorCharge
from gateways.simulator.connector import SimulatorConnector
from payments.models import Payment, PaymentStatusChange
from payments.services import payment_process, payment_recover, payment_validate
from pgi.api.idempotency import Claim, KeyInProgress, request_fingerprint
from pgi.api.models import IdempotencyRecord
from pgi.api.tasks import idempotency_keys_purge
from pgi.merchants.services import api_key_create

from ..conftest import client_for, simulator_options
from ..gateways.connectors import BrokenAfterChargingConnector
from .helpers import (
    PAYMENTS_URL,
    VALIDATE_URL,
    assert_error,
    dumps,
    loads,
    payment_body,
    post_json,
)

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


@pytest.mark.django_db
def test_a_database_lost_mid_request_is_not_replayed_and_a_retry_runs(api):
    from django.db import OperationalError

    with mock.patch("payments.apis.payment_process", side_effect=OperationalError("terminating connection")):
        lost = post_with_key(api, "order-1")
    assert_error(lost, 503, "SERVICE_UNAVAILABLE")
    assert not IdempotencyRecord.objects.exists()  # released: nothing was created

    retried = post_with_key(api, "order-1")

    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Payment.objects.count() == 1


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
            assert 1 <= int(response.headers["Retry-After"]) <= 15


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


# --- a request's meaning, not its spelling ---------------------------------------------------------


@pytest.mark.django_db
def test_a_retry_that_spells_out_the_documented_defaults_is_the_same_request(api):
    first = post_with_key(api, "order-1", payment_body(toMerchant=...))

    generated_client = post_with_key(
        api,
        "order-1",
        payment_body(toMerchant=..., reference="", description="", metadata={}, capture=True),
    )

    assert generated_client.status_code == 201, generated_client.content
    assert generated_client.headers["Idempotent-Replayed"] == "true"
    assert generated_client.content == first.content
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_retry_with_the_iban_spaced_and_the_own_merchant_named_is_the_same_request(api):
    first = post_with_key(api, "order-1", payment_body(toMerchant=..., fromAccount="DE89370400440532013000"))
    spaced = "de89 3704 0044 0532 0130 00"

    retry = post_with_key(api, "order-1", payment_body(toMerchant="merchant456", fromAccount=spaced))

    assert retry.headers.get("Idempotent-Replayed") == "true", retry.content
    assert retry.content == first.content
    assert Payment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changed",
    [{"capture": False}, {"reference": "order-1"}, {"metadata": {"cart": "1"}}, {"fromAccount": "account124"}],
)
def test_a_retry_that_changes_what_a_default_means_is_another_request(api, changed):
    post_with_key(api, "order-1")

    retry = post_with_key(api, "order-1", payment_body(**changed))

    assert_error(retry, 422, "IDEMPOTENCY_KEY_REUSED", field=KEY)
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_invalid_bodies_are_compared_as_sent(api):
    first = post_with_key(api, "order-1", payment_body(amount="fifty"))
    assert_error(first, 400, "VALIDATION_ERROR", field="amount")

    same = post_with_key(api, "order-1", payment_body(amount="fifty"))
    other = post_with_key(api, "order-1", payment_body(amount="sixty"))

    assert same.headers["Idempotent-Replayed"] == "true"
    assert same.content == first.content
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.django_db
def test_a_key_stored_before_meanings_were_compared_still_replays(api, merchant):
    """Records written before this release hold the fingerprint of the body as sent."""
    body = payment_body()
    IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key="order-1",
        request_hash=request_fingerprint("POST", PAYMENTS_URL, loads(dumps(body))),
        method="POST",
        path=PAYMENTS_URL,
        response_status=201,
        response_body='{"id":"pay_00000000000000000000000000"}',
        lease_expires_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=1),
    )

    retry = post_with_key(api, "order-1", body)

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == {"id": "pay_00000000000000000000000000"}
    assert not Payment.objects.exists()


def authorized_payment(api) -> str:
    response = post_json(api, PAYMENTS_URL, payment_body(capture=False))
    assert response.json()["status"] == "Authorized", response.content
    return response.json()["id"]


@pytest.mark.django_db
def test_a_capture_with_no_body_and_one_with_an_empty_object_are_the_same_request(api):
    payment_id = authorized_payment(api)
    url = f"{PAYMENTS_URL}/{payment_id}/capture"

    first = api.post(url, headers={KEY: "capture-1"})
    retry = post_json(api, url, {}, **{KEY: "capture-1"})

    assert first.status_code == 200, first.content
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content


@pytest.mark.django_db
def test_a_capture_naming_the_full_amount_is_another_request_than_one_naming_none(api):
    """Whether an amount is the whole one is known only from the payment: a retry is compared on
    the body, so the amount spelled out is another request (it may capture the same)."""
    payment_id = authorized_payment(api)
    url = f"{PAYMENTS_URL}/{payment_id}/capture"
    post_json(api, url, {}, **{KEY: "capture-1"})

    retry = post_json(api, url, {"amount": Decimal("50.00")}, **{KEY: "capture-1"})

    assert_error(retry, 422, "IDEMPOTENCY_KEY_REUSED")


# --- ids and paths are bounded before anything is stored -----------------------------------------

CANNOT_EXIST = [
    "x" * 240,
    "x" * 4000,  # under the 4096-character URL bound, which answers 414 first
    "pay_" + "0" * 27,
    "PAY_" + "0" * 26,
    "pay_" + "0" * 25 + "%00",
    "pay_%C3%A9" + "0" * 24,
]


@pytest.mark.django_db
@pytest.mark.parametrize("operation", ["capture", "cancel"])
@pytest.mark.parametrize("payment_id", CANNOT_EXIST, ids=lambda value: f"{value[:12]}…{len(value)}")
def test_capture_or_cancel_of_an_id_that_cannot_exist_is_404_and_claims_no_key(api, operation, payment_id):
    url = f"{PAYMENTS_URL}/{payment_id}/{operation}"

    first = post_json(api, url, {}, **{KEY: "op-1"})
    again = post_json(api, url, {}, **{KEY: "op-1"})

    assert_error(first, 404, "PAYMENT_NOT_FOUND")
    assert_error(again, 404, "PAYMENT_NOT_FOUND")
    assert "Idempotent-Replayed" not in again.headers
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["", "/status"])
def test_reading_a_payment_whose_id_cannot_exist_is_404_not_500(api, suffix):
    response = api.get(f"{PAYMENTS_URL}/{'x' * 4000}{suffix}")

    assert_error(response, 404, "PAYMENT_NOT_FOUND")


@pytest.mark.django_db
def test_an_unknown_payment_of_the_right_shape_is_still_404_under_a_key(api):
    response = post_json(api, f"{PAYMENTS_URL}/pay_{'0' * 26}/capture", {}, **{KEY: "op-1"})

    assert_error(response, 404, "PAYMENT_NOT_FOUND")


@pytest.mark.django_db
@pytest.mark.urls("tests.api.urls_with_idempotent_echo")
def test_a_path_longer_than_its_column_is_stored_shortened_and_compared_whole(api):
    long_path = "/v1/echo/" + "a" * 4000

    first = post_json(api, long_path, {}, **{KEY: "echo-1"})
    replay = post_json(api, long_path, {}, **{KEY: "echo-1"})
    other = post_json(api, long_path + "b", {}, **{KEY: "echo-1"})

    assert first.status_code == 200, first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    record = IdempotencyRecord.objects.get()
    assert len(record.path) == 255 and record.path.startswith("/v1/echo/aaa") and record.path.endswith("…")


# --- after a crash: the claim's lease, and the payment it is linked to ----------------------------


class StoppingConnector(SimulatorConnector):
    """The simulator, except that the process stops (SystemExit, as a worker's timeout does) right
    after the gateway acted on the operations in `stop_after`, before PGI hears the answer."""

    stop_after: set[str] = set()

    @property
    def max_call_seconds(self) -> float:
        # Read inside the transaction that creates the payment: "create" stops before it commits.
        self._stopping("create", None)
        return super().max_call_seconds

    def _stopping(self, operation, result):
        if operation in self.stop_after:
            raise SystemExit(f"worker stopped during {operation}")
        return result

    def authorize(self, request):
        return self._stopping("authorize", super().authorize(request))

    def capture(self, request):
        return self._stopping("capture", super().capture(request))

    def void(self, request):
        return self._stopping("void", super().void(request))


@pytest.fixture
def stopping_gateway(settings):
    settings.PGI_GATEWAYS = {
        "simulator": simulator_options(**{"class": "tests.api.test_idempotency.StoppingConnector"})
    }
    StoppingConnector.stop_after = set()
    yield StoppingConnector
    StoppingConnector.stop_after = set()


def claim_left_by_a_crash(api, merchant, key: str, body: dict, *, lease_left: timedelta) -> IdempotencyRecord:
    """The row a request leaves when its worker is killed before it created anything: claimed,
    unanswered, unlinked. Its fingerprint is taken from a real request with the same body."""
    probe = post_with_key(api, f"{key}-probe", body)
    assert probe.status_code in (200, 201, 422), probe.content
    fingerprint = IdempotencyRecord.objects.get(key=f"{key}-probe").request_hash
    return IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key=key,
        request_hash=fingerprint,
        method="POST",
        path=PAYMENTS_URL,
        claim_token="dead-worker",
        lease_expires_at=timezone.now() + lease_left,
        expires_at=timezone.now() + timedelta(hours=24),
    )


@pytest.mark.django_db
def test_a_retry_within_the_lease_is_409_with_retry_after_until_it_lapses(api, merchant):
    claim_left_by_a_crash(api, merchant, "order-1", payment_body(), lease_left=timedelta(seconds=9))
    payments = Payment.objects.count()

    retry = post_with_key(api, "order-1")

    assert_error(retry, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert int(retry.headers["Retry-After"]) in (9, 10)
    assert Payment.objects.count() == payments


@pytest.mark.django_db
def test_a_lapsed_claim_with_nothing_created_runs_the_request_again(api, merchant):
    record = claim_left_by_a_crash(api, merchant, "order-1", payment_body(), lease_left=timedelta(seconds=-1))
    payments = Payment.objects.count()

    retry = post_with_key(api, "order-1")

    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry.headers
    assert Payment.objects.count() == payments + 1
    record.refresh_from_db()
    assert (record.response_status, record.linked_id) == (201, retry.json()["id"])
    assert record.claim_token != "dead-worker"
    assert post_with_key(api, "order-1").content == retry.content


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_a_lapsed_claim_with_nothing_created_run_it_once(api, merchant, merchant_key):
    claim_left_by_a_crash(api, merchant, "order-1", payment_body(), lease_left=timedelta(seconds=-1))
    payments = Payment.objects.count()
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    responses = [None] * threads_count

    def retry(index):
        try:
            client = client_for(merchant_key)
            barrier.wait(timeout=30)
            responses[index] = post_with_key(client, "order-1")
        finally:
            connection.close()

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert Payment.objects.count() == payments + 1
    ran = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(ran) == 1
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "IDEMPOTENCY_IN_PROGRESS")
            assert "Retry-After" in response.headers
        else:
            assert response.json()["id"] == ran[0].json()["id"]


@pytest.mark.django_db
def test_a_request_stopped_after_the_payment_was_created_answers_retries_from_the_payment(api, stopping_gateway):
    stopping_gateway.stop_after = {"authorize"}
    with pytest.raises(SystemExit):
        post_with_key(api, "order-1")
    stopping_gateway.stop_after = set()
    payment = Payment.objects.get()
    record = IdempotencyRecord.objects.get()
    assert (record.response_status, record.linked_id) == (None, payment.id)
    assert record.lapsed()  # the stopping request ended its lease: nothing renews it any more

    while_processing = post_with_key(api, "order-1")

    assert while_processing.status_code == 201
    assert while_processing.headers["Idempotent-Replayed"] == "true"
    assert (while_processing.json()["id"], while_processing.json()["status"]) == (payment.id, "Processing")
    record.refresh_from_db()
    assert record.response_status is None  # not final: the next retry looks again

    assert payment_recover(payment_id=payment.id) == "settled"
    settled = post_with_key(api, "order-1")
    Payment.objects.filter(pk=payment.id).update(description="changed since")
    later = post_with_key(api, "order-1")

    assert (settled.status_code, settled.json()["status"]) == (201, "Completed")
    assert later.content == settled.content
    record.refresh_from_db()
    assert record.response_status == 201
    assert Payment.objects.count() == 1
    assert SimulatorCharge.objects.count() == 1


@pytest.mark.django_db
def test_a_request_stopped_before_the_payment_committed_releases_the_key(api, stopping_gateway):
    stopping_gateway.stop_after = {"create"}
    with pytest.raises(SystemExit):
        post_with_key(api, "order-1")
    stopping_gateway.stop_after = set()
    assert not Payment.objects.exists()
    assert not IdempotencyRecord.objects.exists()

    retry = post_with_key(api, "order-1")

    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry.headers
    assert Payment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("operation", "stopped_on", "final_status"),
    [("capture", "capture", "Completed"), ("cancel", "void", "Cancelled")],
)
def test_a_capture_or_cancel_stopped_mid_call_answers_retries_from_the_payment(
    api, stopping_gateway, operation, stopped_on, final_status
):
    payment_id = authorized_payment(api)
    url = f"{PAYMENTS_URL}/{payment_id}/{operation}"
    stopping_gateway.stop_after = {stopped_on}
    with pytest.raises(SystemExit):
        post_json(api, url, {}, **{KEY: "op-1"})
    stopping_gateway.stop_after = set()

    in_flight = post_json(api, url, {}, **{KEY: "op-1"})

    assert in_flight.status_code == 202, in_flight.content
    assert in_flight.headers["Idempotent-Replayed"] == "true"
    assert (in_flight.json()["status"], in_flight.json()["pendingOperation"]) == ("Authorized", stopped_on)
    assert IdempotencyRecord.objects.get(key="op-1").response_status is None

    assert payment_recover(payment_id=payment_id) == "settled"  # re-sent with the operation's own key
    done = post_json(api, url, {}, **{KEY: "op-1"})

    assert done.status_code == 200, done.content
    assert (done.json()["status"], done.json()["pendingOperation"]) == (final_status, None)
    assert IdempotencyRecord.objects.get(key="op-1").response_status == 200


@pytest.mark.django_db
def test_a_lapsed_capture_claim_with_nothing_sent_runs_the_capture_again(api, merchant):
    payment_id = authorized_payment(api)
    url = f"{PAYMENTS_URL}/{payment_id}/capture"
    fingerprint = request_fingerprint("POST", url, {})
    IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key="op-1",
        request_hash=fingerprint,
        method="POST",
        path=url,
        claim_token="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        expires_at=timezone.now() + timedelta(hours=24),
    )

    retry = post_json(api, url, {}, **{KEY: "op-1"})

    assert retry.status_code == 200, retry.content
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["status"] == "Completed"
    assert IdempotencyRecord.objects.get(key="op-1").linked_id == payment_id


@pytest.mark.django_db
def test_a_request_that_lost_its_lapsed_claim_creates_no_payment(api, principal, merchant):
    record = claim_left_by_a_crash(api, merchant, "order-1", payment_body(), lease_left=timedelta(seconds=-1))
    payments = Payment.objects.count()
    post_with_key(api, "order-1")  # a retry took the key over and ran
    draft = payment_validate(
        principal=principal, amount=Decimal("50.00"), currency="USD", from_account="account123", to_merchant=None
    )

    with pytest.raises(KeyInProgress):
        payment_process(draft=draft, principal=principal, link=Claim(record.pk, "dead-worker").link)

    assert Payment.objects.count() == payments + 1


class LinkProbeConnector(SimulatorConnector):
    """Records, during the gateway call, the claim's link as another connection sees it: committed."""

    seen: list = []

    def authorize(self, request):
        def read():
            try:
                self.seen.append(IdempotencyRecord.objects.values_list("linked_id", flat=True).first())
            finally:
                connection.close()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        return super().authorize(request)


@pytest.mark.django_db(transaction=True)
def test_the_claim_is_linked_in_the_commit_that_creates_the_payment_before_the_gateway_call(api, settings):
    settings.PGI_GATEWAYS = {
        "simulator": simulator_options(**{"class": "tests.api.test_idempotency.LinkProbeConnector"})
    }
    LinkProbeConnector.seen = []

    created = post_with_key(api, "order-1")

    assert created.status_code == 201, created.content
    assert LinkProbeConnector.seen == [created.json()["id"]]


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_while_the_request_runs(api, settings, merchant_key):
    settings.PGI_IDEMPOTENCY_LEASE_SECONDS = 1
    settings.PGI_GATEWAYS = {"simulator": simulator_options(latency=3.0)}
    first = {}
    runner = threading.Thread(target=lambda: first.update(response=post_with_key(client_for(merchant_key), "order-1")))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not Payment.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # past the first lease: only renewals keep the key held

        retry = post_with_key(client_for(merchant_key), "order-1")

        assert_error(retry, 409, "IDEMPOTENCY_IN_PROGRESS")
        assert int(retry.headers["Retry-After"]) == 1
    finally:
        runner.join(timeout=30)
        connection.close()
    assert first["response"].status_code == 201
    assert Payment.objects.count() == 1
