"""Settlement: what PGI owes each merchant, per currency, for its captured payments up to a cut-off,
less its completed refunds and its fees, as one batch with its lines and payout files.

Settlement reads payments and refunds and never changes them: which payment or refund is settled
is kept here, one line each under a unique constraint, so "settled exactly once" is the database's
rule, not the code's. docs/08-batch-processing.md tells the whole story.
"""

from django.db import models
from django.db.models import Q

from payments.models import Payment, money_field
from pgi.ids import new_id
from pgi.merchants.models import Merchant
from pgi.money import AMOUNT_DECIMAL_PLACES
from refunds.models import Refund

SETTLEMENT_ID_PREFIX = "stl"


def new_settlement_id() -> str:
    return new_id(SETTLEMENT_ID_PREFIX)


# A batch's totals are sums of any number of payments, each up to the API's largest amount (14
# integer digits): 26 integer digits hold a trillion of the largest payments.
TOTAL_MAX_DIGITS = 30


def total_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=TOTAL_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class FeePlan(models.Model):
    """A merchant's fee: a percentage of each captured payment in basis points (1.4 % is 140), plus
    a fixed amount and an optional minimum per currency (FeePlanCurrency). No plan: no fee."""

    merchant = models.OneToOneField(Merchant, on_delete=models.CASCADE, related_name="fee_plan")
    basis_points = models.PositiveIntegerField(
        default=0, help_text="Percentage of each captured payment in basis points: 140 is 1.40 %."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(basis_points__lte=10000), name="fee_plan_at_most_all")]

    def __str__(self) -> str:
        return f"{self.merchant.code}: {self.basis_points} bp"


class FeePlanCurrency(models.Model):
    """The fixed part and the minimum of a fee plan in one currency (none: 0 fixed, no minimum)."""

    plan = models.ForeignKey(FeePlan, on_delete=models.CASCADE, related_name="currencies")
    currency = models.CharField(max_length=3)
    fixed = money_field(default=0, help_text="Added to the percentage on each payment.")
    minimum = money_field(null=True, blank=True, help_text="The least fee of one payment; empty: none.")

    class Meta:
        ordering = ["currency"]
        verbose_name = "fee plan currency"
        verbose_name_plural = "fee plan currencies"
        constraints = [
            models.UniqueConstraint(fields=["plan", "currency"], name="fee_plan_currency_once"),
            models.CheckConstraint(condition=Q(fixed__gte=0), name="fee_plan_fixed_not_negative"),
            models.CheckConstraint(
                condition=Q(minimum__isnull=True) | Q(minimum__gte=0), name="fee_plan_minimum_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.currency


class BatchStatus(models.TextChoices):
    """The payout status of a batch. A batch whose net is not above zero pays nothing: it is
    carried forward into the merchant's next batch in that currency (a `carry` line there)."""

    PENDING = "pending", "pending payout"
    PAID_OUT = "paid_out", "paid out"
    HELD = "held", "held"
    CARRIED_FORWARD = "carried_forward", "carried forward"


# Which payout status may follow which (staff actions; carried_forward is set at creation only).
BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    BatchStatus.PENDING: frozenset({BatchStatus.PAID_OUT, BatchStatus.HELD}),
    BatchStatus.HELD: frozenset({BatchStatus.PENDING, BatchStatus.PAID_OUT}),
    BatchStatus.PAID_OUT: frozenset(),
    BatchStatus.CARRIED_FORWARD: frozenset(),
}


class SettlementBatch(models.Model):
    """One merchant's settlement in one currency up to one cut-off. Its totals are the sums of its
    lines, written in the transaction that wrote the lines; fee plan and payee are copied in, so the
    batch and its payout files read the same whatever changes on the merchant later."""

    id = models.CharField(primary_key=True, max_length=32, default=new_settlement_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="settlement_batches")
    currency = models.CharField(max_length=3)
    cutoff = models.DateTimeField(help_text="Captures and refunds up to this moment (inclusive) are in the batch.")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    status_reason = models.CharField(max_length=255, blank=True, default="")
    status_changed_at = models.DateTimeField()
    gross_amount = total_field(default=0, help_text="Captured payments.")
    refund_amount = total_field(default=0, help_text="Completed refunds.")
    fee_amount = total_field(default=0)
    carried_amount = total_field(default=0, help_text="Carried forward from earlier batches (zero or negative).")
    net_amount = total_field(default=0, help_text="gross - refunds - fees + carried.")
    payment_count = models.PositiveIntegerField(default=0)
    refund_count = models.PositiveIntegerField(default=0)
    fee_basis_points = models.PositiveIntegerField(default=0)
    fee_fixed = money_field(default=0)
    fee_minimum = money_field(null=True, blank=True)
    payee_name = models.CharField(max_length=200, blank=True, default="")
    payee_iban = models.CharField(max_length=34, blank=True, default="")
    payee_bic = models.CharField(max_length=11, blank=True, default="")
    # The bank's own account the payout files pay from (PGI_SETTLEMENT debtor_* when the batch was
    # made): files built again later are the same bytes whatever the settings say then.
    debtor_name = models.CharField(max_length=200, blank=True, default="")
    debtor_iban = models.CharField(max_length=34, blank=True, default="")
    debtor_bic = models.CharField(max_length=11, blank=True, default="")
    payout_date = models.DateField(help_text="The requested execution date of the credit transfer.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "settlement batch"
        verbose_name_plural = "settlement batches"
        indexes = [
            models.Index(fields=["merchant", "-created_at", "-id"], name="settlement_merchant_created"),
            models.Index(fields=["merchant", "currency", "status"], name="settlement_merchant_status"),
        ]
        constraints = [
            # A rerun of a cut-off finds its batch and adds nothing.
            models.UniqueConstraint(fields=["merchant", "currency", "cutoff"], name="settlement_batch_once"),
        ]
        permissions = [
            ("mark_paid_out_settlementbatch", "Can mark a settlement batch paid out"),
            ("hold_settlementbatch", "Can hold or release a settlement batch"),
            ("rebuild_payout_files_settlementbatch", "Can build a settlement batch's payout files again"),
        ]

    def __str__(self) -> str:
        return self.id


class LineKind(models.TextChoices):
    PAYMENT = "payment"
    REFUND = "refund"
    CARRY = "carry", "carried forward"


class SettlementLine(models.Model):
    """One captured payment (amount, fee), one completed refund, or one earlier batch's net carried
    forward. The unique constraints are what settles each exactly once."""

    id = models.BigAutoField(primary_key=True)
    # No foreign keys in the database (db_constraint=False), for the batch, the carried batch, the
    # payment or the refund: lines are written only by a run's INSERT … SELECT, which takes every id
    # from the rows it joins, in the transaction that wrote the batch rows; batches are deleted by
    # nobody but that run (an empty one, before it has lines) and payments and refunds by nobody.
    # A constraint would check each of a million lines again at commit, even a NULL carried batch:
    # 2.5 to 7 s of a million-line run (bench/README.md). tests/settlements/test_settle.py holds
    # the lines to their batches. Django still cascades a batch's deletion to its lines.
    batch = models.ForeignKey(
        SettlementBatch, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=8, choices=LineKind.choices)
    # No index of their own: the unique constraints below are the indexes that find a payment's,
    # a refund's or a carried batch's line (fewer indexes to write a million lines into).
    payment = models.ForeignKey(
        Payment, on_delete=models.DO_NOTHING, related_name="+", null=True, blank=True, db_index=False,
        db_constraint=False,
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.DO_NOTHING, related_name="+", null=True, blank=True, db_index=False,
        db_constraint=False,
    )
    carried_batch = models.ForeignKey(
        SettlementBatch, on_delete=models.PROTECT, related_name="+", null=True, blank=True, db_index=False,
        db_constraint=False,
    )
    # A carry line holds an earlier batch's net, which may be beyond one payment's 14 integer digits.
    amount = total_field(help_text="The captured amount, the refund's amount, or the carried net.")
    fee = money_field(default=0)
    net = total_field(help_text="What the line adds to the payout: amount - fee, -refund, or the carried net.")
    occurred_at = models.DateTimeField(help_text="When it was captured or refunded (the carried batch's cut-off).")

    class Meta:
        ordering = ["id"]
        constraints = [
            # payment_id is set on refund lines too (the refunded payment): the rule is on payment lines.
            models.UniqueConstraint(fields=["payment"], condition=Q(kind="payment"), name="settlement_payment_once"),
            # Partial: the many lines without a refund or a carried batch put nothing in these indexes.
            models.UniqueConstraint(
                fields=["refund"], condition=Q(refund__isnull=False), name="settlement_refund_once"
            ),
            models.UniqueConstraint(
                fields=["carried_batch"], condition=Q(carried_batch__isnull=False), name="settlement_carry_once"
            ),
            models.CheckConstraint(
                condition=(Q(kind="payment") & Q(payment__isnull=False) & Q(refund__isnull=True))
                | (Q(kind="refund") & Q(refund__isnull=False) & Q(payment__isnull=False))
                | (Q(kind="carry") & Q(carried_batch__isnull=False) & Q(payment__isnull=True)),
                name="settlement_line_kind_fits",
            ),
        ]
        # A batch's lines in order, a page at a time (the API's cursor is the line id).
        indexes = [models.Index(fields=["batch", "id"], name="settlement_line_batch")]

    def __str__(self) -> str:
        return f"{self.kind} {self.refund_id or self.payment_id or self.carried_batch_id}"


class SettlementRun(models.Model):
    """A settlement run of every merchant up to a cut-off (the daily job, or `settle` without
    --merchant): when it ended and what it made. The admin warns when the latest scheduled cut-off
    has no run some minutes after it (a worker killed mid-run leaves its message to the broker's
    redelivery, minutes later)."""

    cutoff = models.DateTimeField(unique=True)
    finished_at = models.DateTimeField()
    batches_created = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-cutoff"]

    def __str__(self) -> str:
        return f"run to {self.cutoff:%Y-%m-%d %H:%M:%S}"


class SettlementStatusChange(models.Model):
    """Append-only: every payout status of a batch, why, and who set it."""

    batch = models.ForeignKey(SettlementBatch, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=BatchStatus.choices, blank=True, default="")
    to_status = models.CharField(max_length=16, choices=BatchStatus.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    changed_by = models.CharField(max_length=150, help_text="A staff user, or `system`.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class PayoutFileKind(models.TextChoices):
    CSV = "csv", "CSV"
    PAIN001 = "pain001", "pain.001.001.09 XML"


class PayoutFile(models.Model):
    """A batch's payout instruction as a file for the bank's systems: built only from the batch's
    own fields, so building it again gives the same bytes (and the same sha256)."""

    batch = models.ForeignKey(SettlementBatch, on_delete=models.CASCADE, related_name="payout_files")
    kind = models.CharField(max_length=8, choices=PayoutFileKind.choices)
    name = models.CharField(max_length=100)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["batch", "kind"]
        constraints = [models.UniqueConstraint(fields=["batch", "kind"], name="payout_file_once")]

    def __str__(self) -> str:
        return self.name


# Reconciliation lives in its own package; its models are registered in this app from here.
from settlements.reconciliation.models import (  # noqa: E402,F401
    GatewayReport,
    GatewayReportLine,
    ReconciliationException,
    ReconciliationRun,
    ReconciliationTotal,
)

# The finance UI's daily payment figures (settlements/finance/models.py).
from .finance.models import PaymentDayRollup, PaymentDayTotal  # noqa: F401
