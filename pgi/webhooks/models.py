"""Merchant webhooks: the endpoints a merchant registers, one delivery per event and endpoint, and
every attempt to send it.

A delivery copies the event's id, type and exact body from the outbox row (the outbox is pruned),
so a redelivery days later sends the same bytes. The story: docs/10-webhooks.md.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from pgi.ids import new_id
from pgi.merchants.models import Merchant

ENDPOINT_ID_PREFIX = "we"
DELIVERY_ID_PREFIX = "wd"

# Every event type the outbox carries on payment-events (pgi.events.payloads), in the guide's order.
EVENT_TYPES = (
    "PAYMENT_CREATED",
    "PAYMENT_AUTHORIZED",
    "PAYMENT_PROCESSED",
    "PAYMENT_FAILED",
    "PAYMENT_CANCELLED",
    "PAYMENT_STATUS_UPDATED",
    "REFUND_CREATED",
    "REFUND_COMPLETED",
    "REFUND_FAILED",
    "REFUND_CANCELLED",
)
# An endpoint subscribed to this receives every type, those added later included.
ALL_EVENTS = "*"


def new_endpoint_id() -> str:
    return new_id(ENDPOINT_ID_PREFIX)


def new_delivery_id() -> str:
    return new_id(DELIVERY_ID_PREFIX)


class WebhookEndpoint(models.Model):
    """A URL of a merchant's that PGI posts the chosen events to, signed with the endpoint's secret.

    The secret is stored as issued: signing needs it. It is returned once (on create and on
    rotation) and shown nowhere else, in the admin neither. During a rotation the previous secret
    signs too, until `previous_secret_expires_at`.
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_endpoint_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    event_types = models.JSONField(default=list, help_text='Event types sent here; ["*"] for all.')
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True, default="")
    secret = models.CharField(max_length=128, editable=False)
    previous_secret = models.CharField(max_length=128, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["merchant", "-created_at", "-id"], name="webhook_endpoint_merchant")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types

    def signing_secrets(self, now) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one while
        its rotation window lasts."""
        secrets = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            secrets.append(self.previous_secret)
        return secrets


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # an attempt is due, running, or scheduled
    SUCCEEDED = "succeeded"  # an attempt got a 2xx
    FAILED = "failed"  # PGI gave up: every scheduled attempt failed


class DeliveryQuerySet(models.QuerySet):
    def due(self, now):
        """Pending deliveries whose next attempt is due (a claimed one's is its lease's end), of
        enabled endpoints. The partial index webhook_delivery_due serves it."""
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)


class WebhookDelivery(models.Model):
    """One event for one endpoint, and where sending it stands."""

    id = models.CharField(primary_key=True, max_length=32, default=new_delivery_id, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(help_text="The event's eventId (the outbox row's event_id).")
    event_type = models.CharField(max_length=64)
    body = models.TextField(help_text="The event, exactly as sent (UTF-8 JSON).")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due. A claimed delivery's is pushed to the end of its lease, so that
    # no other worker takes it while its attempt runs, and one whose worker died is taken again.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set by a redelivery of a finished delivery: its next attempt is one more, without retries.
    redelivery_requested_by = models.CharField(max_length=150, blank=True, default="")
    redelivery_only = models.BooleanField(
        default=False, help_text="The next attempt redelivers a finished delivery: no retries after it."
    )
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # The fan-out may run twice over a row (a crash before its mark commits): one delivery.
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_endpoint"),
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")
            ),
        ]
        permissions = [("redeliver_webhookdelivery", "Can redeliver a webhook delivery")]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: written when the attempt is claimed (so a worker that dies mid-call
    leaves its trace), completed with the answer."""

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        REDELIVERY = "redelivery"

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED)
    requested_by = models.CharField(max_length=150, blank=True, default="", help_text="Who asked for a redelivery.")
    url = models.URLField(max_length=2048)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="The start of the answer's body.")
    error = models.CharField(max_length=255, blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once")]

    def __str__(self) -> str:
        return f"#{self.number}"
