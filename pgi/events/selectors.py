"""Reads of the outbox: the relay's next batch and how far behind it is."""

import uuid
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

from .models import OutboxEvent


class UnsentRow(NamedTuple):
    """What the relay publishes of a row: no model instance, no decoded payload (bench/README.md)."""

    id: int
    event_id: uuid.UUID
    topic: str
    key: str
    event_type: str
    body: str
    request_id: str = ""
    payload: dict | None = None  # only for a row without a body


UNSENT_COLUMNS = ("id", "event_id", "topic", "key", "event_type", "body", "request_id")


def outbox_unsent(*, limit: int, excluding: list[int] | None = None) -> list[UnsentRow]:
    """The oldest unsent rows, in publishing order (the partial index outbox_unsent serves it).

    No high-water mark: a row whose transaction commits after a higher id was published is
    found by the next call, so a late commit is published late, never skipped. The body is read
    as text and the payload not at all (decoding it cost the relay a third of its time); a row
    written without a body gets its payload, published as JSON.

    `excluding`: ids in flight (still unsent) that this read must not return again. It takes that
    many more of the oldest unsent rows and leaves those ids out: on PostgreSQL in the query (an
    anti-join on the ids as one array), so that only the rows returned cross the wire (a NOT IN
    spelling out thousands of ids cost ten times the read; reading them all and dropping them
    here, twice the read)."""
    skip = list(excluding or ())
    if connection.vendor == "postgresql":
        rows = _unsent_postgresql(limit=limit, excluding=skip)
    else:
        unsent = OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id").values_list(*UNSENT_COLUMNS)
        skipped = set(skip)
        rows = [UnsentRow(*values) for values in unsent[: limit + len(skip)] if values[0] not in skipped][:limit]
    bare = [row.id for row in rows if not row.body]
    if bare:
        payloads = dict(OutboxEvent.objects.filter(id__in=bare).values_list("id", "payload"))
        rows = [row._replace(payload=payloads[row.id]) if not row.body else row for row in rows]
    return rows


def _unsent_postgresql(*, limit: int, excluding: list[int]) -> list[UnsentRow]:
    """The read as one query, the ids in flight left out by an anti-join on them as one array.

    Bitmap scans are off for it (SET LOCAL: this transaction only). The planner's statistics say
    what the outbox usually holds, almost no unsent row, so for a backlog (a burst, or the relay
    back after a stop) it chose to fetch every unsent row and sort them all for each batch: 50 to
    80 ms for a batch of 2000 out of 50 000 waiting, against 3 ms walking the partial index
    outbox_unsent in id order and stopping at the limit (bench/README.md)."""
    columns = ", ".join(UNSENT_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            f"SELECT {columns} FROM (SELECT {columns} FROM {OutboxEvent._meta.db_table}"
            " WHERE sent_at IS NULL ORDER BY id LIMIT %s) AS oldest"
            " WHERE NOT EXISTS (SELECT FROM unnest(%s::bigint[]) AS flight(id) WHERE flight.id = oldest.id)"
            " ORDER BY id LIMIT %s",
            [limit + len(excluding), excluding, limit],
        )
        return [UnsentRow(*values) for values in cursor.fetchall()]


def relay_lag() -> tuple[int, float]:
    """(rows not yet published, age in seconds of the oldest of them; 0.0 when none)."""
    found = OutboxEvent.objects.filter(sent_at__isnull=True).aggregate(count=Count("id"), oldest=Min("created_at"))
    if not found["count"]:
        return 0, 0.0
    return found["count"], max(0.0, (timezone.now() - found["oldest"]).total_seconds())


def outbox_oldest_unsent() -> OutboxEvent | None:
    """The next row the relay publishes: its `attempts` and `last_error` say why it still waits."""
    return OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id").first()
