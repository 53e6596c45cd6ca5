"""Refunds: money given back on a captured payment, in full or in part, many per payment.

Each refund is sent to its payment's gateway as a GatewayOperation (kind `refund`, key: the refund
id), so sending, re-sending and recovery are the payments' machinery; the refund keeps what
describes it (amount, reason, status, the gateway's answer).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from payments.models import GatewayOperation, Payment, money_field
from pgi.compiled import LoadedWithoutInit
from pgi.ids import new_id
from pgi.merchants.models import ApiKey, Merchant

REFUND_ID_PREFIX = "ref"


def new_refund_id() -> str:
    return new_id(REFUND_ID_PREFIX)


class RefundStatus(models.TextChoices):
    PENDING = "Pending"  # accepted; being sent, or sent and the gateway's outcome not known yet
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"  # by staff, before it was ever sent


class RefundSource(models.TextChoices):
    # Labels as the admin's filter and history show them, one case throughout.
    API = "api", "API"
    BULK_FILE = "bulk_file", "bulk file"
    GATEWAY = "gateway", "gateway"
    WEBHOOK = "webhook", "webhook"
    SYSTEM = "system", "system"
    STAFF = "staff", "staff"


class RefundFile(models.Model):
    """A CSV of refunds uploaded by staff: accepted whole (its refunds created) or rejected whole
    (with a per-row error report). The same content is taken once (its SHA-256 is unique among
    accepted files)."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    content = models.BinaryField(help_text="The file as uploaded.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    rows = models.PositiveIntegerField(default=0)
    total_by_currency = models.JSONField(default=dict, blank=True, help_text="Currency: total, as text.")
    error_report = models.TextField(blank=True, default="", help_text="CSV: row, column, error.")
    errors = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sha256"], condition=Q(outcome="accepted"), name="refund_file_once"),
        ]
        permissions = [("upload_refundfile", "Can upload a bulk refund file")]

    def __str__(self) -> str:
        return self.name


class Refund(LoadedWithoutInit, models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_refund_id, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="refunds")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="refunds", null=True, blank=True)
    operation = models.OneToOneField(GatewayOperation, on_delete=models.PROTECT, related_name="refund")
    amount = money_field()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=RefundSource.choices, default=RefundSource.API)
    refund_file = models.ForeignKey(RefundFile, on_delete=models.PROTECT, related_name="refunds", null=True, blank=True)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    status_changed_at = models.DateTimeField()
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=255, blank=True, default="")
    # A bulk file row's idempotency_key: a later file naming it again is refused.
    bulk_key = models.CharField(max_length=80, null=True, blank=True)
    needs_attention = models.BooleanField(default=False, help_text="Its outcome could not be learned: staff must look.")
    attention_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["merchant", "-created_at", "-id"], name="refund_merchant_created"),
            models.Index(fields=["payment", "-created_at"], name="refund_payment_created"),
            models.Index(fields=["merchant", "status", "-created_at"], name="refund_merchant_status"),
            # The admin's exact search and the webhooks that name a refund by the gateway's reference.
            models.Index(fields=["gateway_reference"], name="refund_gateway_reference", condition=~Q(gateway_reference="")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(fields=["bulk_key"], name="refund_bulk_key_once"),
        ]
        permissions = [
            ("cancel_refund", "Can cancel a pending refund not yet sent"),
            ("retry_refund", "Can retry a failed refund as a new refund"),
            ("restart_refund", "Can restart a flagged refund"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_final(self) -> bool:
        return self.status != RefundStatus.PENDING


class RefundStatusChange(models.Model):
    """Append-only history: every status a refund has had, why, and who moved it."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=RefundStatus.choices, blank=True, default="")
    to_status = models.CharField(max_length=16, choices=RefundStatus.choices)
    source = models.CharField(max_length=16, choices=RefundSource.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
