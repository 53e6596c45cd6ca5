"""Retention, on PostgreSQL: every prune job on beat deletes what is past its period, in batches, and
nothing else; payments, refunds, settlements and their histories are kept however old."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string

from gateways.models import GatewayNotification
from payments.models import Payment, PaymentStatusChange
from pgi.api.models import IdempotencyRecord
from pgi.events.models import OutboxEvent
from pgi.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from refunds.models import Refund
from settlements.models import SettlementBatch, SettlementLine
from settlements.services import settlement_run

from .factories import captured_payment, completed_refund

pytestmark = pytest.mark.django_db

PRUNE_JOBS = {
    "purge-expired-idempotency-keys": "pgi.api.tasks.idempotency_keys_purge",
    "prune-sent-events": "pgi.events.tasks.events_prune",
    "prune-webhook-deliveries": "pgi.webhooks.tasks.webhooks_prune",
    "prune-gateway-notifications": "gateways.tasks.gateway_notifications_prune",
}


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def idempotency_record(key: str, *, expires_at) -> IdempotencyRecord:
    return IdempotencyRecord.objects.create(
        scope="m:1", key=key, request_hash="h", method="POST", path="/v1/payments", response_status=201,
        response_body="{}", lease_expires_at=expires_at, expires_at=expires_at,
    )


def outbox_row(key: str, *, sent_at) -> OutboxEvent:
    return OutboxEvent.objects.create(
        topic="payment-events", key=key, event_type="PAYMENT_PROCESSED", body="{}", payload={}, sent_at=sent_at,
        webhooks_at=sent_at,
    )


def delivery(endpoint, event: OutboxEvent, *, created_at, status=DeliveryStatus.SUCCEEDED) -> WebhookDelivery:
    row = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id=event.event_id, event_type=event.event_type, body=event.body, status=status,
        attempts=1, next_attempt_at=timezone.now(),
    )
    WebhookAttempt.objects.create(
        delivery=row, number=1, url="http://127.0.0.1:1/hooks", started_at=created_at, response_status=200,
        response_body="ok",
    )
    WebhookDelivery.objects.filter(pk=row.pk).update(created_at=created_at)
    return row


def notification(event_id: str, *, received_at) -> GatewayNotification:
    row = GatewayNotification.objects.create(
        gateway="simulator", event_id=event_id, operation="payment", outcome=GatewayNotification.Outcome.UNMATCHED
    )
    GatewayNotification.objects.filter(pk=row.pk).update(received_at=received_at)
    return row


@pytest.fixture
def webhook_endpoint(merchant):
    from pgi.webhooks.services import endpoint_create

    endpoint, _ = endpoint_create(merchant=merchant, url="http://127.0.0.1:1/hooks", event_types=["*"])
    return endpoint


def test_every_prune_job_is_on_the_beat_schedule():
    schedule = {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert {name: schedule.get(name) for name in PRUNE_JOBS} == PRUNE_JOBS


def test_the_prune_jobs_delete_what_is_past_its_period_and_keep_the_young_and_the_kept_tables(
    merchant, webhook_endpoint, settings
):
    settings.PGI_RETENTION = {**settings.PGI_RETENTION, "batch_size": 2, "gateway_notifications_days": 90}
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "retention_days": 7, "prune_batch_size": 2}
    settings.PGI_WEBHOOKS = {**settings.PGI_WEBHOOKS, "retention_days": 30}
    years_ago = ago(days=3 * 365)
    # Money and its history: years old, never pruned.
    payment = captured_payment(merchant=merchant, amount="50.00", captured_at=years_ago)
    refund = completed_refund(payment=payment, amount="10.00", completed_at=years_ago)
    settlement_run(cutoff=ago(days=2 * 365).replace(microsecond=0), full=True)
    Payment.objects.filter(pk=payment.pk).update(created_at=years_ago)
    kept_counts = (Payment.objects.count(), PaymentStatusChange.objects.count(), Refund.objects.count(),
                   SettlementBatch.objects.count(), SettlementLine.objects.count())
    assert kept_counts[3] == 1 and kept_counts[4] == 2

    old_keys = [idempotency_record(f"old-{n}", expires_at=ago(hours=1)) for n in range(3)]
    young_key = idempotency_record("young", expires_at=ago(hours=-23))
    old_events = [outbox_row(f"pay_old{n}", sent_at=ago(days=8)) for n in range(3)]
    young_event = outbox_row("pay_young", sent_at=ago(days=6))
    old_deliveries = [delivery(webhook_endpoint, event, created_at=ago(days=31)) for event in old_events]
    young_delivery = delivery(webhook_endpoint, young_event, created_at=ago(days=29))
    pending_event = outbox_row("pay_pending", sent_at=ago(days=1))
    old_pending = delivery(webhook_endpoint, pending_event, created_at=ago(days=31), status=DeliveryStatus.PENDING)
    old_notes = [notification(f"evt_old{n}", received_at=ago(days=91)) for n in range(3)]
    young_note = notification("evt_young", received_at=ago(days=89))

    deleted = {name: import_string(task).apply().get() for name, task in PRUNE_JOBS.items()}

    assert deleted == {name: 3 for name in PRUNE_JOBS}
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [young_key.pk]
    # The settlement's own event (unsent here: no relay runs) is kept with the young ones.
    assert {young_event.pk, pending_event.pk} <= set(OutboxEvent.objects.values_list("pk", flat=True))
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {young_delivery.pk, old_pending.pk}
    assert set(WebhookAttempt.objects.values_list("delivery_id", flat=True)) == {young_delivery.pk, old_pending.pk}
    assert list(GatewayNotification.objects.values_list("pk", flat=True)) == [young_note.pk]
    assert not any(
        model.objects.filter(pk__in=[row.pk for row in rows]).exists()
        for model, rows in [(IdempotencyRecord, old_keys), (OutboxEvent, old_events), (WebhookDelivery, old_deliveries),
                            (GatewayNotification, old_notes)]
    )
    assert (Payment.objects.count(), PaymentStatusChange.objects.count(), Refund.objects.count(),
            SettlementBatch.objects.count(), SettlementLine.objects.count()) == kept_counts
    refund.refresh_from_db()
    assert refund.status == "Completed"


def test_deletes_go_in_batches_of_the_configured_size(settings):
    settings.PGI_RETENTION = {**settings.PGI_RETENTION, "batch_size": 2}
    for n in range(5):
        notification(f"evt_{n}", received_at=ago(days=200))

    with CaptureQueriesContext(connection) as queries:
        from gateways.services import notifications_prune

        assert notifications_prune() == 5
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3 and not GatewayNotification.objects.exists()


def test_a_row_that_stops_matching_between_its_batch_and_the_delete_stays(monkeypatch):
    from gateways.services import notifications_prune
    from pgi import retention

    rows = [notification(f"evt_{n}", received_at=ago(days=200)) for n in range(3)]
    read = retention.pk_batches

    def batches_then_renewed(queryset, *, size):
        for ids in read(queryset, size=size):
            GatewayNotification.objects.filter(pk=rows[1].pk).update(received_at=timezone.now())
            yield ids

    monkeypatch.setattr(retention, "pk_batches", batches_then_renewed)
    assert notifications_prune(older_than_days=90) == 2
    assert list(GatewayNotification.objects.values_list("pk", flat=True)) == [rows[1].pk]


def test_an_old_delivery_redelivered_during_the_prune_keeps_its_attempts(merchant, webhook_endpoint, monkeypatch):
    from pgi import retention
    from pgi.webhooks.services import deliveries_prune

    redelivered = delivery(webhook_endpoint, outbox_row("pay_1", sent_at=ago(days=1)), created_at=ago(days=40))
    read = retention.pk_batches

    def batches_then_redelivered(queryset, *, size):
        for ids in read(queryset, size=size):
            WebhookDelivery.objects.filter(pk__in=ids).update(status=DeliveryStatus.PENDING)
            yield ids

    monkeypatch.setattr(retention, "pk_batches", batches_then_redelivered)
    assert deliveries_prune(older_than_days=30) == 0
    assert WebhookAttempt.objects.filter(delivery=redelivered).count() == 1


def test_with_nothing_to_prune_the_jobs_delete_nothing():
    from gateways.services import notifications_prune
    from pgi.api.services import idempotency_keys_purge
    from pgi.webhooks.services import deliveries_prune

    assert (notifications_prune(), idempotency_keys_purge(), deliveries_prune()) == (0, 0, 0)
