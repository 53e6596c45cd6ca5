"""Deleting what PGI keeps only for a while (PGI_RETENTION in pgi/settings.py), in short batches.

Each batch is one DELETE in its own transaction, so a prune of millions of rows never holds locks
or a transaction for long, and the writes beside it (payments, the relay) never wait behind it.
Payments, refunds, settlements and the audit trail are never pruned. The long story:
docs/04-operations.md, "Card data and retention".
"""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone


def retention_cutoff(days: int, *, now: datetime | None = None) -> datetime:
    """The moment before which rows kept for `days` days are old enough to go."""
    return (now or timezone.now()) - timedelta(days=days)


def batch_size() -> int:
    return settings.PGI_RETENTION["batch_size"]


def pk_batches(queryset: models.QuerySet, *, size: int) -> Iterator[list]:
    """The primary keys `queryset` selects, in order, `size` at a time; each batch is read after the
    one before has been dealt with, starting after its last key (so a row left alone is not read again)."""
    after = None
    while True:
        window = queryset.order_by("pk")
        if after is not None:
            window = window.filter(pk__gt=after)
        ids = list(window.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        after = ids[-1]


def delete_in_batches(
    queryset: models.QuerySet, *, size: int | None = None, before: Callable[[list], None] | None = None
) -> int:
    """Delete the rows `queryset` selects, a batch of `size` (PGI_RETENTION batch_size) per
    transaction, and return how many went. The queryset's conditions are checked again by each
    DELETE, so a row that stopped matching meanwhile (a renewed key, a redelivered webhook) stays.
    `before(ids)` runs first in the same transaction (to delete rows that point at these)."""
    deleted = 0
    for ids in pk_batches(queryset, size=size or batch_size()):
        with transaction.atomic():
            if before is not None:
                # Locked and checked again first, so that `before` touches only rows that go.
                ids = list(queryset.filter(pk__in=ids).select_for_update().values_list("pk", flat=True))
                before(ids)
            deleted += queryset.filter(pk__in=ids).delete()[0]
    return deleted
