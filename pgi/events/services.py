"""Writes on the outbox other than the receivers' own: pruning the rows the relay has sent."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .models import OutboxEvent
from .payloads import events_settings


def events_prune(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete sent rows older than `older_than_days` (PGI_EVENTS["retention_days"]) and return how
    many. Batches of `batch_size` ids, each DELETE its own short transaction, so the relay's and the
    payments' inserts never wait behind one long delete. Unsent rows are never deleted, nor
    payment-events rows that merchant webhooks (pgi.webhooks) have not fanned out yet."""
    config = events_settings()
    days = config["retention_days"] if older_than_days is None else older_than_days
    size = config["prune_batch_size"] if batch_size is None else batch_size
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        # The partial index outbox_sent_at serves this: sent rows only, oldest first.
        ids = list(
            OutboxEvent.objects.filter(sent_at__isnull=False, sent_at__lt=cutoff)
            .exclude(Q(webhooks_at__isnull=True) & Q(topic=config["payment_events_topic"]))
            .order_by("sent_at")
            .values_list("id", flat=True)[:size]
        )
        if not ids:
            return deleted
        count, _ = OutboxEvent.objects.filter(id__in=ids).delete()
        deleted += count
