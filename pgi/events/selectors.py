"""Reads of the outbox: the relay's next batch and how far behind it is."""

from django.db.models import Count, Min
from django.utils import timezone

from .models import OutboxEvent


def outbox_unsent(*, limit: int) -> list[OutboxEvent]:
    """The oldest unsent rows, in publishing order (the partial index outbox_unsent serves it).

    No high-water mark: a row whose transaction commits after a higher id was published is
    found by the next call, so a late commit is published late, never skipped."""
    return list(OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id")[:limit])


def relay_lag() -> tuple[int, float]:
    """(rows not yet published, age in seconds of the oldest of them; 0.0 when none)."""
    found = OutboxEvent.objects.filter(sent_at__isnull=True).aggregate(count=Count("id"), oldest=Min("created_at"))
    if not found["count"]:
        return 0, 0.0
    return found["count"], max(0.0, (timezone.now() - found["oldest"]).total_seconds())


def outbox_oldest_unsent() -> OutboxEvent | None:
    """The next row the relay publishes: its `attempts` and `last_error` say why it still waits."""
    return OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id").first()
