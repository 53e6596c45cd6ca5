"""Settlement reads: a merchant's batches and their lines, and the settlement id of a payment or refund."""

from django.db.models import OuterRef, QuerySet, Subquery

from pgi.errors import NotFound
from pgi.ids import is_id
from pgi.merchants.principals import Principal

from .models import (
    SETTLEMENT_ID_PREFIX,
    LineKind,
    PayoutFile,
    SettlementBatch,
    SettlementLine,
)

# How the payout files are served: the same bytes and headers from the admin and the finance UI.
PAYOUT_FILE_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "pain001": "application/xml"}
STATEMENT_COLUMNS = ("kind", "payment_id", "refund_id", "carried_batch_id", "amount", "fee", "net", "occurred_at")


def payment_settlement_id() -> Subquery:
    """The batch holding the payment's line (unique: settlement_payment_once), for payment_list."""
    lines = SettlementLine.objects.filter(payment=OuterRef("pk"), kind=LineKind.PAYMENT).values("batch_id")
    return Subquery(lines[:1])


def refund_settlement_id() -> Subquery:
    """The batch holding the refund's line (unique: settlement_refund_once), for refund_list."""
    lines = SettlementLine.objects.filter(refund=OuterRef("pk"), refund__isnull=False).values("batch_id")
    return Subquery(lines[:1])


def settlement_list(*, principal: Principal) -> QuerySet[SettlementBatch]:
    """The batches the caller may see: its merchant's, or every merchant's for a platform key."""
    qs = SettlementBatch.objects.select_related("merchant")
    if not principal.is_platform:
        qs = qs.filter(merchant=principal.merchant)
    return qs


def settlement_get(*, principal: Principal, settlement_id: str) -> SettlementBatch:
    """Raises NotFound for a batch that does not exist or that the caller may not see (another
    merchant's batch is as unknown as none); an id no batch can have is refused without a query."""
    batch = None
    if is_id(settlement_id, SETTLEMENT_ID_PREFIX):
        batch = settlement_list(principal=principal).filter(pk=settlement_id).first()
    if batch is None:
        raise NotFound("No settlement with this id.", code="SETTLEMENT_NOT_FOUND")
    return batch


def settlement_lines(*, batch: SettlementBatch) -> QuerySet[SettlementLine]:
    return SettlementLine.objects.filter(batch=batch).order_by("id")


def settlement_run_missing(now=None):
    """The latest scheduled cut-off when no settlement run of every merchant is recorded for it
    PGI_SETTLEMENT late_minutes after it (no SettlementRun and no batch at it), else None. A run
    is late when beat or the worker was down, or a worker was killed mid-run: its message is
    delivered again only after the broker's visibility timeout (PGI_CELERY_VISIBILITY_TIMEOUT)."""
    import datetime as dt

    from django.utils import timezone

    from .models import SettlementRun
    from .services import settlement_cutoff_latest, settlement_settings

    now = now or timezone.now()
    cutoff = settlement_cutoff_latest(now)
    if now < cutoff + dt.timedelta(minutes=settlement_settings()["late_minutes"]):
        return None
    if SettlementRun.objects.filter(cutoff=cutoff).exists() or SettlementBatch.objects.filter(cutoff=cutoff).exists():
        return None
    return cutoff


def payout_file_get(*, batch_id: str, kind: str) -> PayoutFile | None:
    """A batch's stored payout file of one kind (csv, pain001), or None."""
    return PayoutFile.objects.filter(batch_id=batch_id, kind=kind).first()


def settlement_statement_rows(*, batch: SettlementBatch, chunk_size: int = 5000):
    """The batch's lines as STATEMENT_COLUMNS tuples, in line order, read through a server-side
    cursor `chunk_size` rows at a time: a batch of a million lines never sits in memory."""
    return settlement_lines(batch=batch).values_list(*STATEMENT_COLUMNS).iterator(chunk_size=chunk_size)
