"""The transactional outbox: every event PGI publishes, written in the transaction that caused it.

A receiver of the domain signals (payments.signals, refunds.signals) writes one row per event inside
the transaction that changes the status, so the event commits with the change or not at all. The
relay (`manage.py relay_events`) publishes the rows to Kafka in order and marks each one sent only
from the broker's delivery report; delivery is at least once, and `event_id` lets consumers drop
duplicates.
"""

import json
import uuid
from decimal import Decimal

import simplejson
from django.db import models
from django.db.models import Q


class PublishedMessage(dict):
    """A message with the text it is published as (`body`): the `payload` column stores that text
    as it is, rather than writing the message a second time (pgi.events.payloads._row)."""

    def __init__(self, message: dict, text: str):
        super().__init__(message)
        self.text = text


class DecimalJSONEncoder(json.JSONEncoder):
    """Writes Decimal as its exact JSON number (50.00), never through a float."""

    def encode(self, o):
        if type(o) is PublishedMessage:
            return o.text
        return simplejson.dumps(o, use_decimal=True, ensure_ascii=False, separators=(",", ":"))


class DecimalJSONDecoder(json.JSONDecoder):
    """Reads JSON numbers with a point as Decimal: PostgreSQL's jsonb keeps 50.00 as written."""

    def __init__(self, *args, **kwargs):
        kwargs["parse_float"] = Decimal
        super().__init__(*args, **kwargs)


class OutboxEvent(models.Model):
    id = models.BigAutoField(primary_key=True)  # the publishing order
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=128)
    key = models.CharField(max_length=64, help_text="The Kafka message key: the payment id, so one payment's events stay in order.")
    event_type = models.CharField(max_length=64)
    # `body` is what the relay publishes, byte for byte (UTF-8): jsonb would reorder the keys.
    # `payload` is the same message for queries and the admin, its amounts read back as Decimal.
    body = models.TextField(help_text="The message, exactly as published (UTF-8 JSON).")
    payload = models.JSONField(
        encoder=DecimalJSONEncoder, decoder=DecimalJSONDecoder, help_text="The message, for queries and the admin."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True, default="")
    # Whose event it is, for merchant webhooks (pgi.webhooks): a refund's message does not name the
    # merchant. No foreign-key constraint: one check fewer on the payment's commit, and the row is
    # only ever written by the receivers from a payment's or a refund's own merchant.
    # No index either: nothing looks rows up by merchant, and every index costs the relay's mark (below).
    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    # The request (or the Celery task it queued) that caused the event: the relay sends it as the
    # Kafka header `pgi-request-id` (docs/04-operations.md, "Metrics, logs and health probes").
    request_id = models.CharField(max_length=128, blank=True, default="")
    # When pgi.webhooks turned the row into deliveries (or found no endpoint for it); NULL: not yet.
    # Only payment-events rows are fanned out; events_prune keeps a row until this is set.
    webhooks_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # As few indexes as the queries need: marking a row sent (or fanned out) writes a new version
        # of it, with a new entry in every index whose condition the new version meets. An index on
        # sent_at for the prune cost the relay about a fifth of its mark; the prune walks the primary
        # key instead (events.services.events_prune). bench/README.md has the figures.
        indexes = [
            models.Index(fields=["id"], name="outbox_unsent", condition=Q(sent_at__isnull=True)),
            # The webhooks fan-out's queue (the default topic's name: the index serves that one).
            models.Index(
                fields=["id"], name="outbox_webhooks_due", condition=Q(webhooks_at__isnull=True, topic="payment-events")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
