from django.db import models

from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS


class SimulatorCharge(models.Model):
    """The simulator gateway's own ledger: what the pretend gateway believes it charged.

    Kept apart from PGI's payments on purpose: it plays the remote side, so PGI must learn its
    state through the connector (answers, webhooks, status queries), never by reading this table.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        DECLINED = "declined"
        PENDING = "pending"

    reference = models.CharField(max_length=40, unique=True)
    idempotency_key = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    account = models.CharField(max_length=64)
    merchant_code = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices)
    decline_code = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.reference
