"""The simulator's ledger: the pretend gateway's own rows, in the gateways app's tables.

They belong to the `gateways` app (its migrations created them); gateways/models.py imports them so
that Django finds them where it looks for the app's models.
"""

from django.db import models

from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS


class SimulatorCharge(models.Model):
    """The simulator gateway's own ledger: what the pretend gateway believes it charged.

    Kept apart from PGI's payments on purpose: it plays the remote side, so PGI must learn its
    state through the connector (answers, webhooks, status queries), never by reading this table.
    One ledger per configured simulator: rows carry the gateway code, and the idempotency key (PGI's
    payment id) is unique per gateway, so two simulators can each hold a charge of one payment
    (failover from one to the other).
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"  # captured: at once (capture=True) or by a capture call
        AUTHORIZED = "authorized"  # held, waiting for capture or void
        DECLINED = "declined"
        PENDING = "pending"  # the outcome follows by webhook (…0202)
        CANCELLED = "cancelled"  # voided

    gateway = models.CharField(max_length=32, default="simulator", help_text="The simulator's gateway code.")
    reference = models.CharField(max_length=40, unique=True)
    idempotency_key = models.CharField(max_length=64, help_text="PGI's payment id.")
    amount = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    account = models.CharField(max_length=64)
    merchant_code = models.CharField(max_length=64)
    capture = models.BooleanField(default=True, help_text="False: authorize only, capture later.")
    status = models.CharField(max_length=16, choices=Status.choices)
    decline_code = models.CharField(max_length=64, blank=True, default="")
    captured_amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    captured_at = models.DateTimeField(null=True, blank=True, help_text="When the capture was booked.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "gateways"  # gateways/migrations keeps these tables; gateways/models.py imports this module
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "idempotency_key"], name="simulator_charge_unique_key"),
        ]
        indexes = [models.Index(fields=["gateway", "captured_at"], name="simulator_charge_captured")]

    def __str__(self) -> str:
        return self.reference


class SimulatorRefund(models.Model):
    """A refund in the simulator's ledger, kept once per PGI refund id and gateway (the idempotency
    key). Refused refunds are kept too, so a repeated request gets the same answer."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        PENDING = "pending"  # amount ending in 20: completed by a signed webhook a little later

    gateway = models.CharField(max_length=32, help_text="The simulator's gateway code.")
    refund_id = models.CharField(max_length=64, help_text="PGI's refund id.")
    reference = models.CharField(max_length=40, unique=True)
    charge = models.ForeignKey(SimulatorCharge, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=255, blank=True, default="")
    reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "gateways"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "refund_id"], name="simulator_refund_unique_id"),
        ]
        indexes = [models.Index(fields=["gateway", "created_at"], name="simulator_refund_created")]

    def __str__(self) -> str:
        return self.reference
