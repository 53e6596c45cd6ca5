from decimal import Decimal

from django.db import models
from django.db.models import Q

from pgi.ids import new_id
from pgi.merchants.models import ApiKey, Merchant
from pgi.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS


class PaymentStatus(models.TextChoices):
    PENDING = "Pending"
    PROCESSING = "Processing"
    AUTHORIZED = "Authorized"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    PARTIALLY_REFUNDED = "PartiallyRefunded"
    REFUNDED = "Refunded"


def new_payment_id() -> str:
    return new_id("pay")


def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class Payment(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_payment_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="payments")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    amount = money_field()
    currency = models.CharField(max_length=3)
    from_account = models.CharField(max_length=64)
    reference = models.CharField(max_length=64, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    # When the payment reached its current status: the request's `timestamp`.
    status_changed_at = models.DateTimeField()
    gateway = models.CharField(max_length=32, blank=True, default="")
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=255, blank=True, default="")
    refunded_amount = money_field(default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list endpoint: a merchant's payments, newest first, optionally by status.
            models.Index(fields=["merchant", "-created_at", "-id"], name="payment_merchant_created"),
            models.Index(fields=["merchant", "status", "-created_at"], name="payment_merchant_status"),
            models.Index(fields=["merchant", "reference"], name="payment_merchant_reference"),
            models.Index(fields=["status", "status_changed_at"], name="payment_status_changed"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                name="payment_refunded_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.id


class PaymentStatusChange(models.Model):
    """Append-only history: every status a payment has had, why, and who moved it."""

    class Source(models.TextChoices):
        API = "api"
        GATEWAY = "gateway"
        WEBHOOK = "webhook"
        SYSTEM = "system"
        STAFF = "staff"

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=PaymentStatus.choices, blank=True, default="")
    to_status = models.CharField(max_length=20, choices=PaymentStatus.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
