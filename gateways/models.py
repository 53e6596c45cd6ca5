from django.db import models

from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS

# The simulator's ledger lives with the simulator; imported here so that Django registers it with
# the gateways app, whose migrations hold its tables.
from .simulator.models import SimulatorCharge, SimulatorRefund  # noqa: F401


class GatewayRoute(models.Model):
    """One entry of a merchant's gateway priority list for a currency.

    Payments try the active routes for their merchant and currency in priority order (lowest
    first), failing over to the next only when a gateway is unavailable. Routes with a blank
    currency apply to every currency that has no routes of its own; a merchant with no routes at
    all uses settings.PGI_DEFAULT_GATEWAY.
    """

    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.CASCADE, related_name="gateway_routes")
    currency = models.CharField(max_length=3, blank=True, default="", help_text="ISO 4217 code; blank for any currency.")
    gateway = models.CharField(max_length=32, help_text="A gateway code configured in PGI_GATEWAYS.")
    priority = models.PositiveSmallIntegerField(default=1, help_text="Tried in ascending order.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["merchant", "currency", "priority"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "currency", "gateway"], name="gateway_route_unique_gateway"),
            models.UniqueConstraint(fields=["merchant", "currency", "priority"], name="gateway_route_unique_priority"),
        ]

    def __str__(self) -> str:
        return f"{self.currency or 'any'} #{self.priority}: {self.gateway}"


class GatewayNotification(models.Model):
    """Every accepted webhook notification, kept once per gateway event id.

    The unique constraint is the dedupe: a repeated delivery finds its row and changes nothing.
    Notifications naming a payment PGI does not know are kept with matched=False, for
    reconciliation, instead of being dropped.
    """

    class Outcome(models.TextChoices):
        APPLIED = "applied", "applied: the payment moved"
        IGNORED = "ignored", "ignored: the payment was already past it"
        UNMATCHED = "unmatched", "unmatched: no such payment at PGI"
        RECORDED = "recorded", "recorded: nothing to apply yet"
        FLAGGED = "flagged", "flagged: it contradicts PGI's record; staff must look"

    gateway = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=64, blank=True, default="")
    operation = models.CharField(max_length=16)
    payment_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    refund_id = models.CharField(max_length=64, blank=True, default="")
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=16, blank=True, default="")
    amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    currency = models.CharField(max_length=3, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.CharField(max_length=255, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="gateway_notification_unique_event"),
        ]
        indexes = [models.Index(fields=["outcome", "-received_at"], name="gateway_notification_outcome")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_id}"
