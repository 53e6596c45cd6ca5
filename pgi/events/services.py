"""Writes on the outbox other than the receivers' own: pruning the rows the relay has sent."""

from datetime import timedelta

from django.utils import timezone

from .models import OutboxEvent
from .payloads import events_settings


def events_prune(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete sent rows older than `older_than_days` (PGI_EVENTS["retention_days"]) and return how
    many. Batches of `batch_size` ids, each DELETE its own short transaction, so the relay's and the
    payments' inserts never wait behind one long delete. Unsent rows are never deleted, nor
    payment-events rows that merchant webhooks (pgi.webhooks) have not fanned out yet.

    It walks the rows in id order (the primary key), a window of `batch_size` at a time, from the
    oldest: no index on sent_at, which the relay would update on every mark. Rows are written in id
    order, so the first window with no row created or sent before the cutoff ends the walk; a row
    written a moment out of order is deleted by the next run."""
    config = events_settings()
    days = config["retention_days"] if older_than_days is None else older_than_days
    size = config["prune_batch_size"] if batch_size is None else batch_size
    topic = config["payment_events_topic"]
    cutoff = timezone.now() - timedelta(days=days)
    deleted, after = 0, 0
    while True:
        window = list(
            OutboxEvent.objects.filter(id__gt=after)
            .order_by("id")
            .values_list("id", "created_at", "sent_at", "webhooks_at", "topic")[:size]
        )
        if not window or all(created >= cutoff and (sent is None or sent >= cutoff) for _, created, sent, _, _ in window):
            return deleted
        ids = [
            row_id
            for row_id, _, sent, webhooks, row_topic in window
            if sent is not None and sent < cutoff and not (webhooks is None and row_topic == topic)
        ]
        if ids:
            count, _ = OutboxEvent.objects.filter(id__in=ids).delete()
            deleted += count
        after = window[-1][0]
