"""Reconciliation: each gateway's settlement report for a day, matched to PGI's payments and refunds.

A report (the raw file, kept gzip-compressed with its sha256) is loaded into its lines by COPY; a run
per gateway and day matches the lines in SQL and keeps its totals per category and currency and its
exceptions (every category but `matched`). A rerun of the same gateway and day updates the same run;
exceptions are keyed by gateway, day, category and reference, so a resolution survives reruns.
docs/08-batch-processing.md tells the whole story.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from payments.models import Payment, money_field
from refunds.models import Refund


class ReportFormat(models.TextChoices):
    SIMULATOR = "simulator_csv", "simulator settlement report (CSV)"
    PGI = "pgi_csv", "PGI report lines (CSV)"
    STRIPE = "stripe_csv", "Stripe itemized balance change report (CSV)"
    ADYEN = "adyen_csv", "Adyen payments accounting report (CSV)"


class ReportSource(models.TextChoices):
    CONNECTOR = "connector", "fetched from the gateway"
    INBOX = "inbox", "inbox folder"
    UPLOAD = "upload", "uploaded by finance"
    COMMAND = "command", "manage.py reconcile --file"


class GatewayReportQuerySet(models.QuerySet):
    pass


class GatewayReportManager(models.Manager.from_queryset(GatewayReportQuerySet)):
    """Reads reports without their file (megabytes): loading.report_content reads it on purpose."""

    def get_queryset(self):
        return super().get_queryset().defer("content")


class GatewayReport(models.Model):
    """One gateway's report file for one day, as received. The same bytes for the same gateway and
    day are one report (the unique constraint): loading them again finds this row and adds nothing."""

    gateway = models.CharField(max_length=32)
    day = models.DateField(help_text="The UTC day the report covers.")
    name = models.CharField(max_length=255)
    format = models.CharField(max_length=16, choices=ReportFormat.choices)
    source = models.CharField(max_length=16, choices=ReportSource.choices)
    content = models.BinaryField(help_text="The file as received, gzip-compressed.")
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes before compression.")
    sha256 = models.CharField(max_length=64, help_text="Of the file as received (uncompressed).")
    line_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    chosen_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When it last became its day's current report (loaded, or the same file imported again).",
    )

    objects = GatewayReportManager()

    class Meta:
        ordering = ["-day", "gateway", "-created_at", "-id"]
        verbose_name = "gateway report"
        constraints = [models.UniqueConstraint(fields=["gateway", "day", "sha256"], name="gateway_report_once")]
        indexes = [models.Index(fields=["gateway", "day", "-created_at"], name="gateway_report_day")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.day} {self.name}"

    @property
    def download_name(self) -> str:
        """The name it is served under: `<gateway>_<day>_<id>.csv`, never the uploader's own name
        (`x.html`, a path, quotes), since it is served as CSV."""
        gateway = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in self.gateway) or "report"
        return f"{gateway}_{self.day.isoformat()}_{self.pk}.csv"


class LineKind(models.TextChoices):
    PAYMENT = "payment"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    FEE = "fee"
    OTHER = "other"


class GatewayReportLine(models.Model):
    """One line of a report, normalized (gateways.base.ReportLine's fields). Written by COPY only."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique constraint (report, line_no) is the index that finds a
    # report's lines (one index to write a million lines into).
    report = models.ForeignKey(GatewayReport, on_delete=models.CASCADE, related_name="lines", db_index=False)
    line_no = models.PositiveIntegerField(help_text="The line's row in the file (the header is 1).")
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    payment_id = models.CharField(max_length=64, blank=True, default="", help_text="PGI's id as the gateway reports it.")
    refund_id = models.CharField(max_length=64, blank=True, default="")
    amount = money_field()
    currency = models.CharField(max_length=3)
    fee = money_field(null=True, blank=True, help_text="What the gateway kept, when the report says.")
    booked_at = models.DateTimeField()
    status = models.CharField(max_length=32, blank=True, default="", help_text="The gateway's own word.")

    class Meta:
        ordering = ["report", "line_no"]
        constraints = [models.UniqueConstraint(fields=["report", "line_no"], name="gateway_report_line_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.gateway_reference or self.payment_id}"


class Category(models.TextChoices):
    MATCHED = "matched", "matched"
    AMOUNT_MISMATCH = "amount_mismatch", "amount mismatch"
    CURRENCY_MISMATCH = "currency_mismatch", "currency mismatch"
    STATUS_MISMATCH = "status_mismatch", "status mismatch"
    MISSING_AT_GATEWAY = "missing_at_gateway", "missing at gateway"
    UNKNOWN_TO_PGI = "unknown_to_pgi", "unknown to PGI"
    DUPLICATE = "duplicate", "duplicate"


EXCEPTION_CATEGORIES = tuple(c for c in Category if c != Category.MATCHED)


class RunStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RunTrigger(models.TextChoices):
    BEAT = "beat", "daily schedule"
    INBOX = "inbox", "inbox folder"
    UPLOAD = "upload", "upload"
    COMMAND = "command", "manage.py reconcile"


class ReconciliationRun(models.Model):
    """The reconciliation of one gateway's day: one row per gateway and day, updated by each rerun
    (`run_count`), matched against the day's current report. Totals: ReconciliationTotal rows."""

    id = models.BigAutoField(primary_key=True)
    gateway = models.CharField(max_length=32)
    day = models.DateField()
    report = models.ForeignKey(GatewayReport, on_delete=models.PROTECT, related_name="runs", null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    error = models.TextField(blank=True, default="", help_text="Why the last run failed.")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    triggered_by = models.CharField(max_length=150, default="system", help_text="A user, or `system`.")
    run_count = models.PositiveIntegerField(default=0, help_text="How many times this day was reconciled.")
    line_count = models.PositiveIntegerField(default=0, help_text="Report lines matched.")
    operation_count = models.PositiveIntegerField(default=0, help_text="PGI's payments and refunds of the day.")
    matched_count = models.PositiveIntegerField(default=0)
    exception_count = models.PositiveIntegerField(default=0, help_text="Found by the last run, resolved or not.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "gateway"]
        verbose_name = "reconciliation run"
        constraints = [models.UniqueConstraint(fields=["gateway", "day"], name="reconciliation_run_once")]
        indexes = [models.Index(fields=["-day", "gateway"], name="reconciliation_run_day")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.day}"


class ReconciliationTotal(models.Model):
    """A run's count and sums for one category and currency (written by the run's GROUP BY).
    report_* sum the report's lines (in their currency); pgi_* the day's operations PGI moved, each
    once, in PGI's currency; webhook_amount the webhook-only entries. count goes by the report's
    currency, else PGI's. fee_differences counts the lines whose reported fee differs from the fee
    settlement charged for the same payment."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="totals", db_index=False)
    category = models.CharField(max_length=20, choices=Category.choices)
    currency = models.CharField(max_length=3)
    count = models.PositiveIntegerField(default=0)
    report_amount = money_field(default=0)
    pgi_amount = money_field(default=0)
    report_fee = money_field(default=0)
    pgi_fee = money_field(default=0, help_text="Settlement's fees of the same payments.")
    fee_differences = models.PositiveIntegerField(default=0)
    webhook_amount = money_field(
        default=0, help_text="Webhooks PGI kept as unmatched (unknown to PGI): in neither the report's nor PGI's sum."
    )

    class Meta:
        ordering = ["run", "category", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["run", "category", "currency"], name="reconciliation_total_once")
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.currency}: {self.count}"


class Resolution(models.TextChoices):
    ACCEPTED = "accepted"
    ADJUSTED = "adjusted"
    WRITTEN_OFF = "written_off", "written off"
    ESCALATED = "escalated"


class ReconciliationExceptionQuerySet(models.QuerySet):
    def open(self):
        return self.filter(resolution="")

    def resolved(self):
        return self.exclude(resolution="")

    def overdue(self, *, before):
        """Open and first seen before `before` (selectors pass now - PGI_RECONCILIATION overdue_days)."""
        return self.open().filter(first_seen_at__lt=before)


class ReconciliationException(models.Model):
    """One line or operation of a run that did not match. Its identity is (gateway, day, category,
    reference): a rerun finds the same row, refreshes what it saw and keeps the resolution. `present`
    is False once a later run no longer finds it (a resolved one is kept; an open one is deleted)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="exceptions")
    gateway = models.CharField(max_length=32)
    day = models.DateField()
    category = models.CharField(max_length=20, choices=Category.choices)
    reference = models.CharField(
        max_length=200, help_text="Its stable identity: PGI's payment or refund id, else the gateway's reference."
    )
    currency = models.CharField(max_length=3, help_text="The report's currency, else PGI's.")
    amount = money_field(help_text="The report's amount, else PGI's.")
    report_amount = money_field(null=True, blank=True)
    report_currency = models.CharField(max_length=3, blank=True, default="")
    report_fee = money_field(null=True, blank=True)
    report_status = models.CharField(max_length=32, blank=True, default="")
    report_kind = models.CharField(max_length=12, choices=LineKind.choices, blank=True, default="")
    report_payment_id = models.CharField(max_length=64, blank=True, default="")
    report_refund_id = models.CharField(max_length=64, blank=True, default="")
    line_no = models.PositiveIntegerField(null=True, blank=True, help_text="Its line in the report.")
    gateway_reference = models.CharField(max_length=128, blank=True, default="")
    pgi_amount = money_field(null=True, blank=True)
    pgi_currency = models.CharField(max_length=3, blank=True, default="")
    pgi_fee = money_field(null=True, blank=True)
    pgi_status = models.CharField(max_length=20, blank=True, default="")
    # No foreign keys in the database (as settlement lines): PGI never deletes a payment or refund,
    # and the run's INSERT … SELECT takes the ids from those rows.
    payment = models.ForeignKey(
        Payment, on_delete=models.DO_NOTHING, related_name="+", null=True, blank=True, db_constraint=False
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.DO_NOTHING, related_name="+", null=True, blank=True, db_constraint=False
    )
    detail = models.CharField(max_length=255, blank=True, default="")
    present = models.BooleanField(default=True, help_text="Found by the run's last pass.")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    resolution_note = models.TextField(blank=True, default="")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = ReconciliationExceptionQuerySet.as_manager()

    class Meta:
        ordering = ["-day", "gateway", "category", "id"]
        verbose_name = "reconciliation exception"
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "day", "category", "reference"], name="reconciliation_exception_once"
            ),
            models.CheckConstraint(
                condition=(Q(resolution="") & Q(resolved_at__isnull=True))
                | (~Q(resolution="") & Q(resolved_at__isnull=False)),
                name="reconciliation_exception_resolved_fits",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "category", "id"], name="recon_exception_run"),
            # Open exceptions by age (the dashboard) and the overdue flag.
            models.Index(fields=["first_seen_at"], name="recon_exception_open_age", condition=Q(resolution="")),
            models.Index(fields=["currency", "amount"], name="recon_exception_amount"),
            # A run's open and overdue counts (the runs list, a run's page): only the open rows.
            models.Index(
                fields=["run", "first_seen_at"],
                name="recon_exception_run_open",
                condition=Q(resolution="", present=True),
            ),
        ]
        permissions = [("resolve_reconciliationexception", "Can resolve a reconciliation exception")]

    def __str__(self) -> str:
        return f"{self.category} {self.reference}"

    @property
    def is_resolved(self) -> bool:
        return bool(self.resolution)
