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


class AttentionCode(models.TextChoices):
    """Why a payment is flagged for staff. Recovery giving up (NO_FINAL_ANSWER) ends when the
    gateway answers; every other code says the gateway contradicted PGI's record, so the money may
    not be what PGI recorded, and only staff clear it."""

    NO_FINAL_ANSWER = "NO_FINAL_ANSWER", "no final answer: recovery stopped asking"
    REFERENCE_MISMATCH = "REFERENCE_MISMATCH", "an answer naming another gateway reference"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH", "an answer in another currency"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH", "an answer of another amount"
    CAPTURE_FAILED_AFTER_CONFIRMATION = "CAPTURE_FAILED_AFTER_CONFIRMATION", "a capture failed after it was confirmed"
    AUTHORIZED_NOT_CAPTURED = "AUTHORIZED_NOT_CAPTURED", "an authorization only, for an immediate capture"


PAYMENT_ID_PREFIX = "pay"


def new_payment_id() -> str:
    return new_id(PAYMENT_ID_PREFIX)


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
    # When the payment reached its current status: the API specification's `timestamp`.
    status_changed_at = models.DateTimeField()
    gateway = models.CharField(max_length=32, blank=True, default="")
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=255, blank=True, default="")
    refunded_amount = money_field(default=Decimal("0"))
    # Authorize and capture: with capture=False the payment stops at Authorized until captured
    # (in full or in part: captured_amount) or cancelled, or until the authorization expires.
    capture = models.BooleanField(default=True)
    captured_amount = money_field(null=True, blank=True)
    authorization_expires_at = models.DateTimeField(null=True, blank=True)
    # A capture or void sent to the gateway whose outcome is not known yet (gateway confirms later,
    # or the call timed out). It blocks a second one; recovery re-sends it with the same key.
    pending_operation = models.CharField(max_length=16, blank=True, default="")
    pending_amount = money_field(null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    # The idempotency key of the operation in flight: each capture or void gets its own (a new try
    # after a refusal must not be answered with the refusal); a re-send reuses it.
    pending_key = models.CharField(max_length=80, blank=True, default="")
    pending_expiry = models.BooleanField(default=False, help_text="The void in flight is the expiry job's.")
    operations_sent = models.PositiveSmallIntegerField(default=0)
    # Recovery of payments whose outcome is unknown (Processing, or a pending operation).
    recovery_attempts = models.PositiveSmallIntegerField(default=0)
    next_recovery_at = models.DateTimeField(null=True, blank=True)
    needs_attention = models.BooleanField(
        default=False, help_text="Recovery gave up, or the gateway contradicted the payment: staff must look."
    )
    attention_reason = models.CharField(max_length=255, blank=True, default="")
    attention_code = models.CharField(max_length=40, choices=AttentionCode.choices, blank=True, default="")
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
            models.Index(
                fields=["next_recovery_at"],
                name="payment_recovery_due",
                condition=Q(needs_attention=False) & (Q(status="Processing") | ~Q(pending_operation="")),
            ),
            models.Index(
                fields=["authorization_expires_at"],
                name="payment_authorization_expiry",
                condition=Q(status="Authorized"),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                name="payment_refunded_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(captured_amount__isnull=True)
                | (Q(captured_amount__gt=0) & Q(captured_amount__lte=models.F("amount"))),
                name="payment_captured_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def outcome_unknown(self) -> bool:
        """Sent and not answered yet: Processing, or a capture or void in flight at the gateway."""
        return self.status == PaymentStatus.PROCESSING or bool(self.pending_operation)

    @property
    def flag_clears_on_answer(self) -> bool:
        """Flagged only because recovery got no final answer: the gateway's next answer ends it.
        A contradiction (any other code, or none on a row flagged before codes) stays for staff."""
        return self.needs_attention and self.attention_code == AttentionCode.NO_FINAL_ANSWER


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


class GatewayAttempt(models.Model):
    """Append-only: every call PGI made to a gateway for a payment, and how it went.

    The idempotency key is what the gateway saw: the payment id for the payment itself, derived
    keys for its capture and void (gateways.base.idempotency_key). Several attempts may share a key
    (failover to another gateway, recovery re-sending): the gateway dedupes on it, never charging
    twice.
    """

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        AUTHORIZED = "authorized"
        DECLINED = "declined"
        PENDING = "pending"
        CANCELLED = "cancelled"
        NOT_FOUND = "not_found", "not found at the gateway"
        UNAVAILABLE = "unavailable"
        TIMEOUT = "timeout", "timeout: outcome unknown"
        CIRCUIT_OPEN = "circuit_open", "skipped: circuit open"
        ERROR = "error"

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="gateway_attempts")
    operation = models.CharField(max_length=16)
    gateway = models.CharField(max_length=32)
    idempotency_key = models.CharField(max_length=80)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    message = models.CharField(max_length=255, blank=True, default="")
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["payment", "created_at"], name="gateway_attempt_payment")]

    def __str__(self) -> str:
        return f"{self.operation} at {self.gateway}: {self.outcome}"
