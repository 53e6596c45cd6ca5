from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from pgi.compiled import LoadedWithoutInit
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


class PaymentQuerySet(models.QuerySet):
    def outcome_unknown(self) -> "PaymentQuerySet":
        """Sent and not answered yet: Processing, or a capture or void in flight at the gateway."""
        follow_up = GatewayOperation.objects.pending().follow_ups().filter(payment=models.OuterRef("pk"))
        return self.filter(Q(status=PaymentStatus.PROCESSING) | models.Exists(follow_up))

    def recovery_due(self, now=None) -> "PaymentQuerySet":
        """Not flagged, and the operation holding it is past its next look and held by no one."""
        due = GatewayOperation.objects.recovery_due(now).exclude(kind=OperationKind.REFUND)
        return self.filter(needs_attention=False).filter(models.Exists(due.filter(payment=models.OuterRef("pk"))))

    def with_pending_operation(self) -> "PaymentQuerySet":
        """Annotated with the kind of its capture or void in flight (Payment.pending_operation
        reads it), so that a page of payments is one query."""
        kind = GatewayOperation.objects.pending().follow_ups().filter(payment=models.OuterRef("pk")).values("kind")
        return self.annotate(pending_operation_kind=models.Subquery(kind[:1]))


class Payment(LoadedWithoutInit, models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_payment_id, editable=False)
    # No index of its own: payment_merchant_created, _status and _reference all lead with merchant.
    # A lone merchant index only cost every write, and it tempted the planner into sorting all of a
    # merchant's payments for a page while the table's statistics were stale.
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="payments", db_index=False)
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
    needs_attention = models.BooleanField(
        default=False, help_text="Recovery gave up, or the gateway contradicted the payment: staff must look."
    )
    attention_reason = models.CharField(max_length=255, blank=True, default="")
    attention_code = models.CharField(max_length=40, choices=AttentionCode.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list endpoint: a merchant's payments, newest first, optionally by status.
            models.Index(fields=["merchant", "-created_at", "-id"], name="payment_merchant_created"),
            models.Index(fields=["merchant", "status", "-created_at"], name="payment_merchant_status"),
            models.Index(fields=["merchant", "reference"], name="payment_merchant_reference"),
            models.Index(fields=["status", "status_changed_at"], name="payment_status_changed"),
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
        # Staff roles (pgi/staff/roles.py): whole account identifiers, and the recovery restart.
        permissions = [
            ("view_full_account", "Can see whole account identifiers (fromAccount, IBANs)"),
            ("restart_recovery_payment", "Can restart recovery of a flagged payment"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def outcome_unknown(self) -> bool:
        """Sent and not answered yet: Processing, or a capture or void in flight at the gateway."""
        return self.status == PaymentStatus.PROCESSING or bool(self.pending_operation)

    def open_operation(self) -> "GatewayOperation | None":
        """The operation whose outcome is still unknown and that holds the payment: its
        authorization while Processing, else a capture or void in flight (refunds run beside
        them and are not counted). Read fresh: decide on it under the payment's row lock."""
        return self.operations.pending().exclude(kind=OperationKind.REFUND).order_by("created_at", "id").first()

    @property
    def pending_operation(self) -> str:
        """`capture` or `void` while one is in flight, else ''."""
        if "pending_operation_kind" in self.__dict__:  # PaymentQuerySet.with_pending_operation
            return self.__dict__["pending_operation_kind"] or ""
        op = self.open_operation()
        return op.kind if op is not None and op.kind in FOLLOW_UPS else ""

    @property
    def pending_amount(self) -> Decimal | None:
        """The amount of the capture or void in flight, else None."""
        op = self.open_operation()
        return op.amount if op is not None and op.kind in FOLLOW_UPS else None

    @property
    def recovery_attempts(self) -> int:
        """Recovery's looks at the operation in flight that did not settle it (0 when none is)."""
        op = self.open_operation()
        return op.attempts if op is not None else 0

    @property
    def next_recovery_at(self):
        """When recovery next looks at the operation in flight (None: none is, or staff must look)."""
        op = self.open_operation()
        return op.next_look_at if op is not None else None

    @property
    def flag_clears_on_answer(self) -> bool:
        """Flagged only because recovery got no final answer: the gateway's next answer ends it.
        A contradiction (any other code, or none on a row flagged before codes) stays for staff."""
        return self.needs_attention and self.attention_code == AttentionCode.NO_FINAL_ANSWER


class OperationKind(models.TextChoices):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


# A payment's follow-ups that hold it: one at a time, never beside an authorization in flight.
FOLLOW_UPS = frozenset({OperationKind.CAPTURE, OperationKind.VOID})


class OperationStatus(models.TextChoices):
    PENDING = "pending", "pending (sent or being sent, answer not known yet)"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed (refused by the gateway, or ended by another answer)"
    NOT_SENT = "not_sent", "not sent (the gateway could not be reached; nothing happened there)"


class GatewayOperationQuerySet(models.QuerySet):
    def pending(self) -> "GatewayOperationQuerySet":
        return self.filter(status=OperationStatus.PENDING)

    def follow_ups(self) -> "GatewayOperationQuerySet":
        return self.filter(kind__in=FOLLOW_UPS)

    def recovery_due(self, now=None) -> "GatewayOperationQuerySet":
        """Pending, past its next look and held by no one (a request sending it, or a recovery run)."""
        now = now or timezone.now()
        return self.filter(status=OperationStatus.PENDING, next_look_at__lte=now).filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
        )


class GatewayOperation(LoadedWithoutInit, models.Model):
    """One thing PGI asked a gateway to do with a payment's money: authorize it, capture it, void
    it, or refund part of it. Each has its own idempotency key (every re-send reuses it, so the
    gateway never does it twice), and while its outcome is unknown (`pending`) recovery looks at it
    on a backoff schedule. Its calls are the payment's GatewayAttempts with its key.

    Every change to an operation is made under its payment's row lock, beside the payment change it
    causes. The lease keeps recovery away while a request or a recovery run owns the call.
    """

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="operations", db_index=False)  # operation_payment_kind leads with it
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    amount = money_field()
    idempotency_key = models.CharField(max_length=80, unique=True)
    status = models.CharField(max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    by_expiry = models.BooleanField(default=False, help_text="A void sent because the authorization expired.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Recovery looks that did not settle it.")
    next_look_at = models.DateTimeField(null=True, blank=True, help_text="When recovery next looks; none once staff must.")
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="Held by a request or recovery run until then.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GatewayOperationQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["next_look_at"], name="operation_recovery_due", condition=Q(status="pending")),
            models.Index(fields=["payment", "kind"], name="operation_payment_kind"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="operation_amount_positive"),
            models.UniqueConstraint(
                fields=["payment"], condition=Q(kind="authorize"), name="operation_one_authorization"
            ),
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(status="pending", kind__in=["capture", "void"]),
                name="operation_one_follow_up_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}: {self.status}"

    @property
    def in_flight(self) -> bool:
        return self.status == OperationStatus.PENDING


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

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="gateway_attempts", db_index=False)  # gateway_attempt_payment leads with it
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
