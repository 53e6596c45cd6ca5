"""Outbox rows become deliveries in a Celery task, never in the payment's request; each delivery is
posted signed, retried on the schedule with every attempt recorded, and given up after a day."""

import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from pgi.events.models import OutboxEvent
from pgi.events.payloads import merchant_facing_body
from pgi.events.services import events_prune
from pgi.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from pgi.webhooks.services import (
    deliveries_claim,
    deliveries_fan_out,
    deliveries_send_due,
    delivery_redeliver,
    endpoint_secret_rotate,
)
from pgi.webhooks.tasks import webhooks_fan_out, webhooks_prune, webhooks_send
from tests.events.conftest import processed

pytestmark = pytest.mark.django_db

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "10-webhooks.md"


def guide_verify():
    """verify_pgi_signature as the guide prints it, run as a merchant would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    snippet = next(block for block in blocks if "def verify_pgi_signature" in block)
    namespace: dict = {}
    exec(snippet, namespace)
    return namespace["verify_pgi_signature"]


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def one_delivery(event_type="PAYMENT_PROCESSED") -> WebhookDelivery:
    return WebhookDelivery.objects.get(event_type=event_type)


@pytest.fixture
def subscribed(merchant, endpoint_for):
    """merchant456's endpoint for PAYMENT_PROCESSED only, and its secret."""
    return endpoint_for(merchant, ["PAYMENT_PROCESSED"])


def test_the_payment_request_creates_no_delivery_the_fan_out_task_does(principal, merchant, endpoint_for):
    endpoint, _ = endpoint_for(merchant)
    payment = processed(principal)

    assert WebhookDelivery.objects.count() == 0
    rows = OutboxEvent.objects.filter(key=payment.id, topic="payment-events")
    assert rows.count() >= 2 and all(row.merchant_id == merchant.id and row.webhooks_at is None for row in rows)

    webhooks_fan_out.apply()

    types = sorted(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_type", flat=True))
    assert types == sorted(rows.values_list("event_type", flat=True))  # payment-events only, not notifications
    assert not OutboxEvent.objects.filter(topic="payment-events", webhooks_at__isnull=True).exists()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event_type="PAYMENT_PROCESSED")
    assert delivery.body == merchant_facing_body(rows.get(event_type="PAYMENT_PROCESSED").body)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0


def test_only_subscribed_types_of_the_events_own_merchant_are_fanned_out(
    principal, merchant, other_merchant, endpoint_for
):
    mine, _ = endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    theirs, _ = endpoint_for(other_merchant, ["*"])
    processed(principal)

    deliveries_fan_out()

    assert list(WebhookDelivery.objects.values_list("endpoint_id", "event_type")) == [(mine.id, "PAYMENT_PROCESSED")]
    assert not theirs.deliveries.exists()


def test_events_from_before_an_endpoint_existed_and_disabled_endpoints_get_nothing(principal, merchant, endpoint_for):
    processed(principal)  # before any endpoint
    endpoint_for(merchant, enabled=False)

    assert deliveries_fan_out()[1] == 0
    assert WebhookDelivery.objects.count() == 0


def test_fanning_out_twice_makes_one_delivery_per_endpoint(principal, merchant, subscribed):
    processed(principal)
    deliveries_fan_out()
    OutboxEvent.objects.update(webhooks_at=None)  # as if the first run's mark had not committed

    deliveries_fan_out()

    assert WebhookDelivery.objects.count() == 1


def test_a_delivery_posts_the_exact_body_signed_as_the_guide_verifies(principal, subscribed, receiver):
    endpoint, secret = subscribed
    payment = processed(principal)
    deliveries_fan_out()

    webhooks_send.apply()

    [got] = receiver.received
    delivery = one_delivery()
    row = OutboxEvent.objects.get(key=payment.id, topic="payment-events", event_type="PAYMENT_PROCESSED")
    assert got.body == merchant_facing_body(row.body).encode()
    assert got.path == "/hooks"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["PGI-Event-Id"] == str(row.event_id)
    assert got.headers["PGI-Event-Type"] == "PAYMENT_PROCESSED"
    assert got.headers["PGI-Delivery-Id"] == delivery.id
    verify = guide_verify()
    assert verify(secret, got.headers["PGI-Signature"], got.body)
    assert not verify(secret, got.headers["PGI-Signature"], got.body + b" ")
    assert not verify("whsec_other", got.headers["PGI-Signature"], got.body)
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.succeeded_at is not None
    [attempt] = delivery.attempt_rows.all()
    assert (attempt.number, attempt.response_status, attempt.succeeded, attempt.response_body) == (1, 200, True, "ok")
    assert attempt.duration_ms is not None and attempt.finished_at is not None


def test_a_webhook_shows_the_paying_account_masked_to_its_last_four(principal, subscribed, receiver):
    payment = processed(principal, from_account="DE89370400440532013000")
    deliveries_fan_out()

    webhooks_send.apply()

    [got] = receiver.received
    assert b"DE89370400440532013000" not in got.body
    assert json.loads(got.body)["details"]["fromAccount"] == "****3000"
    assert payment.from_account == "DE89370400440532013000"  # kept whole for the merchant's GET


def test_the_guide_refuses_a_stale_timestamp(principal, subscribed, receiver):
    endpoint, secret = subscribed
    verify = guide_verify()
    from pgi.webhooks.signing import signature_header

    old = int(timezone.now().timestamp()) - 600
    assert not verify(secret, signature_header(secrets=[secret], timestamp=old, body=b"{}"), b"{}")
    assert verify(secret, signature_header(secrets=[secret], timestamp=old + 590, body=b"{}"), b"{}")


def test_failures_are_retried_on_the_schedule_every_attempt_recorded_and_success_stops(
    principal, subscribed, receiver, settings
):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "retry_schedule": [60, 300, 1800], "jitter": 0.1}
    receiver.answers.extend([(500, b"boom"), (503, b"busy")])
    processed(principal)
    deliveries_fan_out()
    delivery = one_delivery()

    waits = []
    for _ in range(3):
        make_due(delivery)
        before = timezone.now()
        assert deliveries_send_due() == 1
        delivery.refresh_from_db()
        if delivery.next_attempt_at:
            waits.append((delivery.next_attempt_at - before).total_seconds())

    assert 54 <= waits[0] <= 67 and 270 <= waits[1] <= 331
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 3
    attempts = list(delivery.attempt_rows.values_list("number", "response_status", "succeeded", "response_body"))
    assert attempts == [(1, 500, False, "boom"), (2, 503, False, "busy"), (3, 200, True, "ok")]
    make_due(delivery)  # a succeeded delivery is not due, whatever its time says
    assert deliveries_send_due() == 0 and len(receiver.received) == 3


def test_a_delivery_is_given_up_after_a_schedule_spanning_more_than_a_day(principal, subscribed, receiver, settings):
    schedule = settings.PGI_WEBHOOKS["retry_schedule"]
    assert sum(schedule) * (1 - settings.PGI_WEBHOOKS["jitter"]) >= 24 * 3600  # the default spans a day
    receiver.default = (500, b"down")
    processed(principal)
    deliveries_fan_out()
    delivery = one_delivery()

    for _ in range(len(schedule) + 1):
        make_due(delivery)
        deliveries_send_due()

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.failed_at is not None
    assert delivery.attempts == len(schedule) + 1 == delivery.attempt_rows.count()
    assert delivery.next_attempt_at is None and delivery.last_response_status == 500
    make_due(delivery)
    assert deliveries_send_due() == 0


def test_a_redirect_is_not_followed_and_an_unreachable_host_is_recorded(principal, merchant, endpoint_for, receiver):
    receiver.answers.append((302, b""))
    endpoint, _ = endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()

    delivery = one_delivery()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_response_status == 302
    assert len(receiver.received) == 1  # the Location (127.0.0.1:1) was not followed

    endpoint.url = "http://127.0.0.1:1/nothing-listens"
    endpoint.save()
    make_due(delivery)
    deliveries_send_due()
    last = delivery.attempt_rows.last()
    assert last.response_status is None and last.error and not last.succeeded


def test_a_long_answer_is_read_up_to_the_limit(principal, subscribed, receiver, settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "response_body_limit": 100}
    receiver.default = (200, b"x" * 100_000)
    processed(principal)
    deliveries_fan_out()

    deliveries_send_due()

    assert one_delivery().attempt_rows.get().response_body == "x" * 100


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one(principal, subscribed, receiver):
    endpoint, old_secret = subscribed
    new_secret = endpoint_secret_rotate(endpoint=endpoint)
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    verify = guide_verify()
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()

    during = receiver.received[-1]
    assert during.headers["PGI-Signature"].count("v1=") == 2
    assert verify(new_secret, during.headers["PGI-Signature"], during.body)
    assert verify(old_secret, during.headers["PGI-Signature"], during.body)

    endpoint.refresh_from_db()
    assert endpoint.previous_secret_expires_at > timezone.now() + timedelta(hours=23)
    endpoint.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    endpoint.save()
    delivery_redeliver(delivery=one_delivery(), requested_by="test")
    deliveries_send_due()

    after = receiver.received[-1]
    assert after.headers["PGI-Signature"].count("v1=") == 1
    assert verify(new_secret, after.headers["PGI-Signature"], after.body)
    assert not verify(old_secret, after.headers["PGI-Signature"], after.body)


def test_redelivering_a_finished_delivery_makes_one_more_attempt_without_retries(principal, subscribed, receiver):
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    delivery = one_delivery()
    assert delivery.status == DeliveryStatus.SUCCEEDED

    receiver.answers.append((500, b"not now"))
    delivery_redeliver(delivery=delivery, requested_by="merchant456")
    delivery_redeliver(delivery=delivery, requested_by="merchant456")  # asked twice: one attempt
    assert deliveries_send_due() == 1

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    second = delivery.attempt_rows.get(number=2)
    assert (second.trigger, second.requested_by, second.response_status) == ("redelivery", "merchant456", 500)

    delivery_redeliver(delivery=delivery, requested_by="staff")
    deliveries_send_due()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 3


def test_redelivering_a_pending_delivery_brings_its_retry_forward(principal, subscribed, receiver):
    receiver.answers.append((500, b""))
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    delivery = one_delivery()
    assert delivery.next_attempt_at > timezone.now()

    delivery_redeliver(delivery=delivery, requested_by="merchant456")

    assert deliveries_send_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED


def test_deliveries_of_a_disabled_endpoint_wait(principal, subscribed, receiver):
    endpoint, _ = subscribed
    processed(principal)
    deliveries_fan_out()
    endpoint.enabled = False
    endpoint.save()

    assert deliveries_send_due() == 0

    endpoint.enabled = True
    endpoint.save()
    assert deliveries_send_due() == 1


def test_a_claimed_attempt_is_held_by_its_lease_and_taken_again_after_it(principal, subscribed):
    processed(principal)
    deliveries_fan_out()
    [(delivery, attempt)] = deliveries_claim(limit=10, now=timezone.now())

    assert deliveries_claim(limit=10, now=timezone.now()) == []  # held: no second worker sends it
    later = deliveries_claim(limit=10, now=timezone.now() + timedelta(minutes=2))  # the worker died

    assert [d.id for d, _ in later] == [delivery.id]
    first = WebhookAttempt.objects.get(pk=attempt.pk)
    assert first.finished_at is not None and "worker stopped" in first.error
    assert later[0][1].number == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_claim_different_deliveries(merchant, endpoint_for, settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "endpoint_concurrency": 40}  # one endpoint, all 40
    endpoint, _ = endpoint_for(merchant)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=endpoint, event_id=f"00000000-0000-0000-0000-{n:012d}", event_type="PAYMENT_CREATED",
                        body="{}", next_attempt_at=timezone.now())
        for n in range(40)
    )
    claimed: list[list[str]] = []
    start = threading.Barrier(4)

    def worker():
        try:
            start.wait()
            claimed.append([d.id for d, _ in deliveries_claim(limit=15, now=timezone.now())])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [delivery_id for batch in claimed for delivery_id in batch]
    assert len(ids) == len(set(ids)) == 40
    assert WebhookAttempt.objects.count() == 40


def test_the_prune_job_keeps_sent_rows_not_fanned_out_yet(principal):
    processed(principal)
    long_ago = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.update(sent_at=long_ago)

    events_prune()

    assert set(OutboxEvent.objects.values_list("topic", flat=True)) == {"payment-events"}
    deliveries_fan_out()
    events_prune()
    assert not OutboxEvent.objects.exists()


def test_both_tasks_are_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {f"pgi.webhooks.tasks.webhooks_{name}" for name in ("fan_out", "send", "prune")} <= tasks



def test_finished_deliveries_past_the_retention_are_pruned_and_pending_ones_kept(principal, merchant, endpoint_for, receiver):
    endpoint_for(merchant)
    processed(principal)
    deliveries_fan_out()
    receiver.answers.append((500, b""))
    deliveries_send_due()  # one failed attempt (pending), the others succeeded
    pending = WebhookDelivery.objects.get(status=DeliveryStatus.PENDING)
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    finished = WebhookDelivery.objects.exclude(pk=pending.pk).count()
    assert finished >= 1

    assert webhooks_prune.apply().get() == finished

    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [pending.pk]
    assert WebhookAttempt.objects.filter(delivery=pending).count() == 1
    assert WebhookAttempt.objects.count() == 1


def test_check_deploy_refuses_private_urls_outside_the_sandbox(settings):
    from pgi.webhooks.checks import private_urls_check

    settings.PGI_SANDBOX = False
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": True}
    assert [message.id for message in private_urls_check()] == ["pgi.E030"]
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "allow_private_urls": False}
    assert private_urls_check() == []


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_fans_out_and_sends_through_the_broker(celery_worker, principal, merchant, endpoint_for, receiver):
    import time

    endpoint, secret = endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    processed(principal)

    webhooks_fan_out.delay()  # as beat does; the fan-out wakes webhooks_send on its commit

    deadline = time.monotonic() + 30
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [got.headers["PGI-Event-Type"] for got in receiver.received] == ["PAYMENT_PROCESSED"]
    assert guide_verify()(secret, receiver.received[0].headers["PGI-Signature"], receiver.received[0].body)


def test_an_endpoint_deleted_while_its_attempt_runs_is_no_error(principal, subscribed):
    from pgi.webhooks.net import PostResult
    from pgi.webhooks.services import attempt_record, endpoint_delete

    endpoint, _ = subscribed
    processed(principal)
    deliveries_fan_out()
    [(delivery, attempt)] = deliveries_claim(limit=1, now=timezone.now())
    endpoint_delete(endpoint=endpoint)

    attempt_record(delivery=delivery, attempt=attempt, result=PostResult(200, "ok", "", 5), now=timezone.now())

    assert not WebhookDelivery.objects.exists()


def test_a_claim_takes_no_more_than_an_endpoints_room_and_skips_full_endpoints(merchant, endpoint_for, settings):
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "endpoint_concurrency": 2}
    busy, _ = endpoint_for(merchant)
    other, _ = endpoint_for(merchant, path="/other")
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=busy, event_id=f"00000000-0000-0000-0000-{n:012d}", event_type="PAYMENT_CREATED",
                         body="{}", next_attempt_at=now - timedelta(minutes=10)) for n in range(6)]
        + [WebhookDelivery(endpoint=other, event_id=f"00000000-0000-0000-0001-{n:012d}", event_type="PAYMENT_CREATED",
                           body="{}", next_attempt_at=now) for n in range(3)]
    )

    first = deliveries_claim(limit=5, now=now)  # five locked, all the busy endpoint's: two taken
    assert [d.endpoint_id for d, _ in first] == [busy.pk, busy.pk]
    second = deliveries_claim(limit=8, now=now, room={busy.pk: 0})  # it is full: the others'
    assert sorted(d.endpoint_id for d, _ in second) == [other.pk] * 2  # and two is their room too
    assert WebhookDelivery.objects.filter(endpoint=busy, attempts=0).count() == 4
