"""The transactional outbox: every event PGI publishes, written in the transaction that caused it.

A receiver of the domain signals (payments.signals, refunds.signals) writes one row per event inside
the transaction that changes the status, so the event commits with the change or not at all. The
relay (`manage.py relay_events`) publishes the rows to Kafka in order and marks each one sent only
from the broker's delivery report; delivery is at least once, and `event_id` lets consumers drop
duplicates.
"""

import uuid

from django.db import models
from django.db.models import Q


class OutboxEvent(models.Model):
    id = models.BigAutoField(primary_key=True)  # the publishing order
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=128)
    key = models.CharField(max_length=64, help_text="The Kafka message key: the payment id, so one payment's events stay in order.")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The message body, exactly as published.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="outbox_unsent", condition=Q(sent_at__isnull=True)),
            models.Index(fields=["sent_at"], name="outbox_sent_at", condition=Q(sent_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
