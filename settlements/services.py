"""Settlement writes: the batch run (set-based SQL), payout status changes, payout files.

A run settles, per merchant and currency, every captured payment and every completed refund up to
the cut-off that no batch holds yet, all in one transaction: an advisory lock (one run at a time),
a batch row per merchant and currency (unique on merchant, currency and cut-off: a rerun finds them
and stops), the lines of all of them in one INSERT … SELECT (each payment and refund unique among
lines: settled once), and each batch's totals as sums over exactly the lines inserted. Python never
loops over the rows.

The same SQL runs on PostgreSQL and on SQLite (`make run`'s embedded default), with the few
fragments that differ in dialect.py: there amounts are computed as exact integers.
"""

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from lxml import etree

from payments.models import Payment, PaymentStatus, PaymentStatusChange
from pgi.audit.actors import Actor
from pgi.audit.services import audit_record
from pgi.errors import BusinessRuleViolation
from pgi.merchants.models import Merchant
from pgi.text import clip
from refunds.models import Refund, RefundStatus

from . import dialect
from .fees import Fee, fee_params, fee_sql
from .models import (
    BATCH_TRANSITIONS,
    BatchStatus,
    FeePlanCurrency,
    LineKind,
    PayoutFile,
    SettlementBatch,
    SettlementLine,
    SettlementRun,
    SettlementStatusChange,
    new_settlement_id,
)
from .payout_files import NoPayeeBic, payout_file_builders
from .sepa import account_problem
from .signals import settlement_completed

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock(LOCK_CLASS, 0): one settlement run at a time (PostgreSQL).
LOCK_CLASS = 0x5E77
# Money taken: the captured amount (all of it unless a capture took part). Refunds are lines of their own.
CHARGED = (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
SYSTEM = "system"

P = Payment._meta.db_table
C = PaymentStatusChange._meta.db_table
R = Refund._meta.db_table
B = SettlementBatch._meta.db_table
L = SettlementLine._meta.db_table


def settlement_settings() -> dict:
    return {
        "cutoff_time": "00:00",
        "time_zone": "UTC",
        "payout_days": 1,
        "lookback_days": 31,
        "late_minutes": 30,
        "debtor_name": "PGI Bank",
        "debtor_iban": "",
        "debtor_bic": "",
        **getattr(settings, "PGI_SETTLEMENT", {}),
    }


SCHEDULE_NAME = "settle-daily"


def settlement_schedule() -> tuple[dt.time, zoneinfo.ZoneInfo]:
    """The daily cut-off time and its time zone: those of beat's `settle-daily` crontab as staff
    left it in the admin (when it names one hour and one minute), else PGI_SETTLEMENT's."""
    from django_celery_beat.models import PeriodicTask

    config = settlement_settings()
    task = PeriodicTask.objects.filter(name=SCHEDULE_NAME).select_related("crontab").first()
    crontab = task.crontab if task is not None else None
    if crontab is not None and crontab.hour.isdigit() and crontab.minute.isdigit():
        return dt.time(int(crontab.hour), int(crontab.minute)), zoneinfo.ZoneInfo(str(crontab.timezone))
    if crontab is not None:  # the admin refuses such a crontab for settle-daily (settlements.admin)
        logger.error(
            "settle-daily's crontab (hour %r, minute %r) names no single time: settling up to PGI_SETTLEMENT's "
            "cutoff_time instead.", crontab.hour, crontab.minute,
        )
    hour, minute = (int(part) for part in config["cutoff_time"].split(":"))
    return dt.time(hour, minute), zoneinfo.ZoneInfo(config["time_zone"])


def settlement_cutoff_latest(now: dt.datetime | None = None) -> dt.datetime:
    """The most recent cut-off at or before `now`: today's cut-off time in the settlement time
    zone if it has passed, else yesterday's. What the daily beat job settles up to, so a late or
    repeated run settles the same cut-off."""
    at, zone = settlement_schedule()
    local = (now or timezone.now()).astimezone(zone)
    cutoff = dt.datetime.combine(local.date(), at, tzinfo=zone)
    if cutoff > local:
        cutoff = dt.datetime.combine(local.date() - dt.timedelta(days=1), at, tzinfo=zone)
    return cutoff.astimezone(dt.UTC)


def settlement_cutoff_check(cutoff: dt.datetime) -> None:
    """Raises BusinessRuleViolation for a cut-off in the future: what is captured before it but after
    the run would wait for the next cut-off, and a rerun of this one would not take it."""
    if cutoff > timezone.now():
        raise BusinessRuleViolation("The cut-off is in the future.", code="CUTOFF_IN_FUTURE")


def payout_date_for(cutoff: dt.datetime) -> dt.date:
    """The cut-off's local date plus payout_days, moved past a weekend."""
    _, zone = settlement_schedule()
    day = cutoff.astimezone(zone).date() + dt.timedelta(days=settlement_settings()["payout_days"])
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def debtor_of(config: dict) -> tuple[str, str, str]:
    """The bank's own account as a batch keeps it: name, IBAN, BIC (compact, upper case)."""
    return (
        config["debtor_name"][:200],
        config["debtor_iban"].replace(" ", "").upper()[:34],
        config["debtor_bic"].replace(" ", "").upper()[:11],
    )


@dataclass(frozen=True)
class Pair:
    merchant_id: int
    currency: str


def _unsettled_payments(where_merchant: str = "", join: str = "") -> str:
    """Captured payments up to %(cutoff)s on no payment line, flagged ones left until staff clear them.
    When a payment was captured is the time of its move to Completed in its status history.

    %(since)s bounds the scan (the payment_status_changed index): a payment captured since then has
    its status changed since then. None: every payment ever captured (a full sweep)."""
    charged = ", ".join(f"'{status}'" for status in CHARGED)
    return (
        f"FROM {P} p JOIN {C} c ON c.payment_id = p.id AND c.to_status = 'Completed' {join}"
        f" WHERE p.status IN ({charged}) AND NOT p.needs_attention AND c.created_at <= %(cutoff)s {where_merchant}"
        f" AND ({dialect.typed('%(since)s', 'timestamptz')} IS NULL OR p.status_changed_at >= %(since)s)"
        f" AND NOT EXISTS (SELECT 1 FROM {L} l WHERE l.payment_id = p.id AND l.kind = 'payment')"
    )


def _unsettled_refunds(where_merchant: str = "", join: str = "") -> str:
    """Completed refunds up to %(cutoff)s on no line; created since %(since)s unless None."""
    return (
        f"FROM {R} r {join} WHERE r.status = '{RefundStatus.COMPLETED}' AND r.status_changed_at <= %(cutoff)s {where_merchant}"
        f" AND ({dialect.typed('%(since)s', 'timestamptz')} IS NULL OR r.created_at >= %(since)s)"
        f" AND NOT EXISTS (SELECT 1 FROM {L} l WHERE l.refund_id = r.id AND l.refund_id IS NOT NULL)"
    )


def settlement_since(cutoff: dt.datetime, *, full: bool = False) -> dt.datetime | None:
    """How far back a run looks for what is not settled yet: PGI_SETTLEMENT lookback_days before the
    cut-off, so a run reads the recent payments only, not every payment ever captured. A full sweep
    (None) also finds older stragglers: a payment flagged for weeks and then cleared."""
    return None if full else cutoff - dt.timedelta(days=settlement_settings()["lookback_days"])


def settlement_pairs(*, cutoff: dt.datetime, merchant: Merchant | None = None, full: bool = False) -> list[Pair]:
    """The merchants and currencies with something to settle up to the cut-off."""
    params = {
        "cutoff": dialect.moment(cutoff),
        "since": dialect.moment(settlement_since(cutoff, full=full)),
        "merchant": merchant.pk if merchant else None,
    }
    mine = dialect.typed("%(merchant)s", "bigint")
    sql = (
        f"SELECT p.merchant_id, p.currency {_unsettled_payments(f'AND ({mine} IS NULL OR p.merchant_id = %(merchant)s)')}"
        f" UNION SELECT r.merchant_id, r.currency {_unsettled_refunds(f'AND ({mine} IS NULL OR r.merchant_id = %(merchant)s)')}"
        " ORDER BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Pair(merchant_id, currency) for merchant_id, currency in cursor.fetchall()]


def merchant_fee(*, merchant_id: int, currency: str) -> Fee:
    """The merchant's fee in a currency; no plan: no fee; no currency row: the percentage alone."""
    plan = getattr(Merchant.objects.filter(pk=merchant_id).select_related("fee_plan").first(), "fee_plan", None)
    if plan is None:
        return Fee.none()
    row = FeePlanCurrency.objects.filter(plan=plan, currency=currency).first()
    if row is None:
        return Fee(basis_points=plan.basis_points, fixed=Decimal(0), minimum=None)
    return Fee(basis_points=plan.basis_points, fixed=row.fixed, minimum=row.minimum)


def _lines_select(*, batches: str) -> str:
    """The lines of new batches, for every merchant and currency at once: payments with their fees,
    refunds, and earlier batches carried forward. `batches` is a relation (batch_id, merchant_id,
    currency, bps, divisor, unit, fixed, minimum): each row's batch and fee plan.

    The first SELECT names the columns (LINE_COLUMNS): SQLite has no column list on a subquery's alias.
    On SQLite a payment's amount and fee are integer ten-thousandths here (dialect.money), stored back
    as amounts (dialect.stored)."""
    fee = fee_sql(
        "a.amount", bps="a.bps", divisor="a.divisor", unit="a.unit", fixed="a.fixed", minimum="a.minimum",
        integers=dialect.integers(),
    )
    return (
        f"SELECT batch_id AS batch_id, '{LineKind.PAYMENT}' AS kind, id AS payment_id, NULL AS refund_id,"
        f" NULL AS carried_batch_id, {dialect.stored('amount')} AS amount, {dialect.stored('fee')} AS fee,"
        f" {dialect.stored('amount - fee')} AS net, occurred_at AS occurred_at FROM"
        f" (SELECT a.batch_id, a.id, a.amount, a.occurred_at, {fee} AS fee FROM"
        f"  (SELECT x.*, p.id, {dialect.money('COALESCE(p.captured_amount, p.amount)')} AS amount,"
        f"   c.created_at AS occurred_at"
        f"   {_unsettled_payments(join=f'JOIN {batches} x ON x.merchant_id = p.merchant_id AND x.currency = p.currency')}"
        f"  ) a) s"
        f" UNION ALL SELECT x.batch_id, '{LineKind.REFUND}', r.payment_id, r.id, NULL, r.amount, 0, -r.amount,"
        f" r.status_changed_at"
        f" {_unsettled_refunds(join=f'JOIN {batches} x ON x.merchant_id = r.merchant_id AND x.currency = r.currency')}"
        f" UNION ALL SELECT x.batch_id, '{LineKind.CARRY}', NULL, NULL, b.id, b.net_amount, 0, b.net_amount, b.cutoff"
        f" FROM {B} b JOIN {batches} x ON x.merchant_id = b.merchant_id AND x.currency = b.currency"
        f" WHERE b.status = '{BatchStatus.CARRIED_FORWARD}' AND b.cutoff < %(cutoff)s"
        f" AND NOT EXISTS (SELECT 1 FROM {L} l WHERE l.carried_batch_id = b.id AND l.carried_batch_id IS NOT NULL)"
    )


LINE_COLUMNS = "batch_id, kind, payment_id, refund_id, carried_batch_id, amount, fee, net, occurred_at"


def _totals_sql() -> str:
    """A batch's totals over its lines (GROUP BY batch_id): the columns of Totals."""
    amount, fee, net = dialect.money("amount"), dialect.money("fee"), dialect.money("net")
    return (
        f"COALESCE(SUM({amount}) FILTER (WHERE kind = 'payment'), 0),"
        f" COALESCE(SUM({amount}) FILTER (WHERE kind = 'refund'), 0),"
        f" COALESCE(SUM({fee}), 0),"
        f" COALESCE(SUM({amount}) FILTER (WHERE kind = 'carry'), 0),"
        f" COALESCE(SUM({net}), 0),"
        " COUNT(*) FILTER (WHERE kind = 'payment'),"
        " COUNT(*) FILTER (WHERE kind = 'refund'),"
        " COUNT(*)"
    )


@dataclass(frozen=True)
class Totals:
    gross: Decimal
    refunds: Decimal
    fees: Decimal
    carried: Decimal
    net: Decimal
    payments: int
    refunds_count: int
    lines: int

    @classmethod
    def of_row(cls, row) -> "Totals":
        """From _totals_sql's columns as the cursor gives them."""
        *sums, payments, refunds_count, lines = row
        return cls(*(dialect.to_decimal(value) for value in sums), payments, refunds_count, lines)


@dataclass(frozen=True)
class PairOutcome:
    merchant_id: int
    currency: str
    batch_id: str | None  # None: nothing settled (a dry run, an existing batch, or nothing left)
    created: bool
    totals: Totals | None


def _batch_params(rows: list[tuple[str | None, Pair, Fee]], cutoff: dt.datetime, full: bool) -> dict:
    """The parameters of _lines_select for (batch id, pair, fee) rows."""
    batches = []
    for batch_id, pair, fee in rows:
        f = fee_params(fee, pair.currency, integers=dialect.integers())
        batches.append((
            batch_id or f"{pair.merchant_id}:{pair.currency}", pair.merchant_id, pair.currency,
            f["bps"], f["divisor"], f["unit"], f["fixed"], f["minimum"],
        ))
    return {
        "cutoff": dialect.moment(cutoff),
        "since": dialect.moment(settlement_since(cutoff, full=full)),
        **dialect.batches_params(batches),
    }


def settlement_preview(*, pairs: list[Pair], cutoff: dt.datetime, full: bool = False) -> dict[Pair, Totals]:
    """What settling the pairs now would give, writing nothing (`settle --dry-run`)."""
    rows = [(None, pair, merchant_fee(merchant_id=pair.merchant_id, currency=pair.currency)) for pair in pairs]
    sql = f"SELECT batch_id, {_totals_sql()} FROM ({_lines_select(batches=dialect.batches_relation())}) AS x GROUP BY batch_id"
    with connection.cursor() as cursor:
        cursor.execute(sql, _batch_params(rows, cutoff, full))
        found = {key: Totals.of_row(values) for key, *values in cursor.fetchall()}
    empty = Totals(Decimal(0), Decimal(0), Decimal(0), Decimal(0), Decimal(0), 0, 0, 0)
    return {pair: found.get(f"{pair.merchant_id}:{pair.currency}", empty) for pair in pairs}


def _batch_insert(*, pair: Pair, fee: Fee, merchant: Merchant, cutoff: dt.datetime, now: dt.datetime) -> str | None:
    """The batch row for the pair and cut-off, its totals still zero; None when it exists already."""
    batch_id = new_settlement_id()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {B} (id, merchant_id, currency, cutoff, status, status_reason, status_changed_at,"
            " gross_amount, refund_amount, fee_amount, carried_amount, net_amount, payment_count, refund_count,"
            " fee_basis_points, fee_fixed, fee_minimum, payee_name, payee_iban, payee_bic, payout_date,"
            " created_at, updated_at, debtor_name, debtor_iban, debtor_bic)"
            " VALUES (%s, %s, %s, %s, %s, '', %s, 0, 0, 0, 0, 0, 0, 0, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (merchant_id, currency, cutoff) DO NOTHING RETURNING id",
            [
                batch_id, pair.merchant_id, pair.currency, dialect.moment(cutoff), BatchStatus.PENDING,
                dialect.moment(now), fee.basis_points, fee.fixed, fee.minimum, merchant.name,
                merchant.settlement_iban, merchant.settlement_bic, dialect.moment(payout_date_for(cutoff)),
                dialect.moment(now), dialect.moment(now), *debtor_of(settlement_settings()),
            ],
        )
        return batch_id if cursor.fetchone() is not None else None


def _lines_insert(rows: list[tuple[str, Pair, Fee]], cutoff: dt.datetime, full: bool) -> dict[str, Totals]:
    """All the new batches' lines in one INSERT … SELECT (one pass over the payments and refunds),
    and each batch's totals summed over exactly the lines it inserted: {batch id: totals}."""
    params, batches = _batch_params(rows, cutoff, full), dialect.batches_relation()
    insert = f"INSERT INTO {L} ({LINE_COLUMNS}) {_lines_select(batches=batches)} ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        if dialect.integers():
            # SQLite has no INSERT in a WITH: the batches are new in this transaction, so their
            # lines are exactly the ones inserted.
            cursor.execute(insert, params)
            cursor.execute(
                f"SELECT batch_id, {_totals_sql()} FROM {L}"
                f" WHERE batch_id IN (SELECT batch_id FROM {batches} AS x) GROUP BY batch_id",
                params,
            )
            return {batch_id: Totals.of_row(values) for batch_id, *values in cursor.fetchall()}
        # The "not settled yet" probes must use the lines' unique indexes. While the lines table
        # is (or was last analyzed) empty, the planner would scan it instead, once per payment:
        # inside the INSERT that grows it, that is quadratic (50,000 payments took minutes).
        cursor.execute("SET LOCAL enable_seqscan = off")
        # RETURNING only what the totals read: the rows wait in a tuplestore that spills to disk
        # past work_mem (a million lines: 51 MB written to temporary files instead of 105 MB).
        cursor.execute(
            f"WITH inserted AS ({insert} RETURNING batch_id, kind, amount, fee, net)"
            f" SELECT batch_id, {_totals_sql()} FROM inserted GROUP BY batch_id",
            params,
        )
        totals = {batch_id: Totals.of_row(values) for batch_id, *values in cursor.fetchall()}
        cursor.execute("SET LOCAL enable_seqscan TO DEFAULT")
    return totals


def _batch_finish(*, batch_id: str, totals: Totals, merchant: Merchant) -> SettlementBatch:
    """Totals and first payout status on the batch, its history line, its payout files, its event."""
    status, reason = _first_status(totals.net, merchant)
    SettlementBatch.objects.filter(pk=batch_id).update(
        gross_amount=totals.gross,
        refund_amount=totals.refunds,
        fee_amount=totals.fees,
        carried_amount=totals.carried,
        net_amount=totals.net,
        payment_count=totals.payments,
        refund_count=totals.refunds_count,
        status=status,
        status_reason=reason,
    )
    batch = SettlementBatch.objects.select_related("merchant").get(pk=batch_id)
    SettlementStatusChange.objects.create(batch=batch, to_status=status, reason=reason, changed_by=SYSTEM)
    if status == BatchStatus.PENDING:
        try:
            payout_files_generate(batch=batch)
        except BusinessRuleViolation as exc:  # no debtor account, or a file the XSD refuses: held, not lost
            reason = clip(f"{exc.code}: {exc.message}", 255)
            SettlementStatusChange.objects.create(
                batch=batch, from_status=status, to_status=BatchStatus.HELD, reason=reason, changed_by=SYSTEM
            )
            SettlementBatch.objects.filter(pk=batch_id).update(status=BatchStatus.HELD, status_reason=reason)
            batch.status, batch.status_reason = BatchStatus.HELD, reason
    settlement_completed.send(sender=SettlementBatch, batch=batch)
    return batch


def _first_status(net: Decimal, merchant: Merchant) -> tuple[str, str]:
    if net <= 0:
        return BatchStatus.CARRIED_FORWARD, "NET_NOT_POSITIVE: carried into the next batch"
    if not merchant.settlement_iban:
        return BatchStatus.HELD, "NO_SETTLEMENT_ACCOUNT: the merchant has no IBAN"
    return BatchStatus.PENDING, ""


def settlement_run(
    *,
    cutoff: dt.datetime,
    merchant: Merchant | None = None,
    dry_run: bool = False,
    progress: Callable[[PairOutcome], None] | None = None,
    full: bool = False,
    planned: Callable[[list[Pair]], None] | None = None,
) -> list[PairOutcome]:
    """Settle every merchant and currency (or `merchant`'s) up to `cutoff`, one batch each, all in
    one transaction: one run at a time (an advisory lock; on SQLite the transaction's write lock,
    taken at BEGIN IMMEDIATE by the settings), each batch once per cut-off (a unique
    constraint), each payment and refund once (unique lines), the lines in one INSERT … SELECT.
    `planned` is called once with the merchants and currencies found (before anything is written),
    `progress` once per merchant and currency.

    `full`: look at every payment and refund ever, not only the last lookback_days (see
    settlement_since). Raises BusinessRuleViolation for a cut-off in the future
    (settlement_cutoff_check)."""
    settlement_cutoff_check(cutoff)
    if dry_run:
        pairs = settlement_pairs(cutoff=cutoff, merchant=merchant, full=full)
        settled = _settled_pairs(cutoff=cutoff, merchant=merchant, besides=pairs)
        if planned is not None:
            planned(pairs + settled)
        previews = settlement_preview(pairs=pairs, cutoff=cutoff, full=full)
        outcomes = [PairOutcome(p.merchant_id, p.currency, None, False, totals) for p, totals in previews.items()]
        outcomes += [PairOutcome(p.merchant_id, p.currency, None, False, None) for p in settled]
        for outcome in outcomes:
            if progress is not None:
                progress(outcome)
        return outcomes
    with transaction.atomic():
        # A second run (beat and a person, two workers) waits here, then finds this one's work done.
        # SQLite: the settings begin every transaction IMMEDIATE, so the BEGIN above took the
        # database's write lock; there are no advisory locks.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_CLASS])
        pairs = settlement_plan(cutoff=cutoff, merchant=merchant, full=full)
        if planned is not None:
            planned(pairs)
        merchants = Merchant.objects.in_bulk({pair.merchant_id for pair in pairs})
        now = timezone.now()
        outcomes, created = [], []

        def done(outcome: PairOutcome) -> None:
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)

        for pair in pairs:
            fee = merchant_fee(merchant_id=pair.merchant_id, currency=pair.currency)
            batch_id = _batch_insert(pair=pair, fee=fee, merchant=merchants[pair.merchant_id], cutoff=cutoff, now=now)
            if batch_id is None:  # this cut-off's batch exists: a rerun adds nothing
                done(PairOutcome(pair.merchant_id, pair.currency, None, False, None))
            else:
                created.append((batch_id, pair, fee))
        totals = _lines_insert(created, cutoff, full) if created else {}
        for batch_id, pair, _ in created:
            if batch_id not in totals:  # nothing left to settle after all
                SettlementBatch.objects.filter(pk=batch_id).delete()
                done(PairOutcome(pair.merchant_id, pair.currency, None, False, None))
                continue
            _batch_finish(batch_id=batch_id, totals=totals[batch_id], merchant=merchants[pair.merchant_id])
            done(PairOutcome(pair.merchant_id, pair.currency, batch_id, True, totals[batch_id]))
        if merchant is None:  # the run of every merchant: what the admin's late-run warning looks for
            # A rerun of the cut-off (beat again, a redelivered message) adds what it made, usually
            # nothing, to the count rather than replacing it. Safe under the run's lock.
            finished = {"finished_at": timezone.now()}
            if not SettlementRun.objects.filter(cutoff=cutoff).update(
                batches_created=F("batches_created") + len(totals), **finished
            ):
                SettlementRun.objects.create(cutoff=cutoff, batches_created=len(totals), **finished)
        return outcomes


def settlement_plan(*, cutoff: dt.datetime, merchant: Merchant | None = None, full: bool = False) -> list[Pair]:
    """What a run of the cut-off goes through: the pairs with something to settle, then those whose
    batch of this cut-off exists already (a rerun, or a run that waited on the lock while another
    settled the cut-off, reports them as already settled, not as nothing)."""
    pairs = settlement_pairs(cutoff=cutoff, merchant=merchant, full=full)
    return pairs + _settled_pairs(cutoff=cutoff, merchant=merchant, besides=pairs)


def _settled_pairs(*, cutoff: dt.datetime, merchant: Merchant | None, besides: list[Pair]) -> list[Pair]:
    """The merchants and currencies that have this cut-off's batch already and are not in `besides`."""
    batches = SettlementBatch.objects.filter(cutoff=cutoff)
    if merchant is not None:
        batches = batches.filter(merchant=merchant)
    seen = set(besides)
    return sorted(
        {Pair(m, c) for m, c in batches.values_list("merchant_id", "currency")} - seen,
        key=lambda pair: (pair.merchant_id, pair.currency),
    )


# What a merchant reads (payoutStatusReason) after a staff move: never staff's own reason, which
# may say what must not be told (a compliance hold).
MERCHANT_REASONS = {
    BatchStatus.HELD: "Held by the bank.",
    BatchStatus.PENDING: "",
    BatchStatus.PAID_OUT: "",
}


# A staff move as the audit trail names it.
BATCH_MOVE_NAMES = {BatchStatus.PAID_OUT: "mark_paid_out", BatchStatus.HELD: "hold", BatchStatus.PENDING: "release"}


def settlement_batch_move(
    *, batch_id: str, to_status: str, staff_user: str, reason: str, actor: Actor | None = None
) -> SettlementBatch:
    """Staff: mark a batch paid out (the bank's confirmation reference required), hold it (a reason
    required), or release a hold (its payout files must exist). Under the batch's row lock; the
    reason goes to the history, the merchant sees MERCHANT_REASONS. Raises BusinessRuleViolation for
    a move its status or files do not allow."""
    with transaction.atomic():
        batch = SettlementBatch.objects.select_for_update().get(pk=batch_id)
        if to_status not in BATCH_TRANSITIONS[batch.status]:
            raise BusinessRuleViolation(
                f"A {batch.get_status_display()} batch cannot become {BatchStatus(to_status).label}.",
                code="SETTLEMENT_STATUS_NOT_ALLOWED",
            )
        if to_status == BatchStatus.HELD and not reason.strip():
            raise BusinessRuleViolation("A hold needs a reason.", code="SETTLEMENT_HOLD_REASON_REQUIRED")
        if to_status == BatchStatus.PAID_OUT and not reason.strip():
            raise BusinessRuleViolation(
                "Marking a batch paid out needs the bank's confirmation reference.",
                code="SETTLEMENT_PAYOUT_REFERENCE_REQUIRED",
            )
        if to_status in (BatchStatus.PAID_OUT, BatchStatus.PENDING) and not batch.payout_files.exists():
            # Pending means "payout files made, to be paid": a batch PGI held for want of an account
            # or a valid file is released only once its files are built (build them again first).
            raise BusinessRuleViolation(
                "The batch has no payout files: build them first.", code="SETTLEMENT_NO_PAYOUT_FILES"
            )
        # Staff's own words stay in the history, for staff; the merchant's API shows a fixed text.
        SettlementStatusChange.objects.create(
            batch=batch, from_status=batch.status, to_status=to_status, reason=clip(reason, 255), changed_by=staff_user
        )
        audit_record(actor=actor, action=f"settlement_batch.{BATCH_MOVE_NAMES[to_status]}", obj=batch, note=reason,
                     before={"status": batch.status}, after={"status": to_status})  # fmt: skip
        batch.status = to_status
        batch.status_reason = MERCHANT_REASONS[to_status]
        batch.status_changed_at = timezone.now()
        batch.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
        return batch


def payout_files_generate(
    *, batch: SettlementBatch, rebuilt_by: str | None = None, actor: Actor | None = None
) -> list[PayoutFile]:
    """Build (or build again) the batch's payout files from its own fields: its payee and its
    debtor (the bank's account as PGI_SETTLEMENT named it when the batch was made), so building
    again gives the same bytes. A batch made without a settlement account takes the merchant's
    current one first, and one made without a debtor account PGI_SETTLEMENT's current one.
    `rebuilt_by` (a staff user): a rebuild, recorded in the batch's history with the files' sha256
    before and after. Raises BusinessRuleViolation when the batch is paid out (its files are what
    the bank paid), there is nothing to pay, no account to pay to or from, or a file cannot be built
    (INVALID_PAYOUT_FILE: an invalid debtor account, text or amount the file cannot carry)."""
    import hashlib

    if batch.status == BatchStatus.PAID_OUT:
        raise BusinessRuleViolation(
            "The batch is paid out: its payout files are what the bank paid and are kept as they are.",
            code="SETTLEMENT_PAID_OUT",
        )
    if batch.net_amount <= 0:
        raise BusinessRuleViolation("The batch pays nothing.", code="SETTLEMENT_NOTHING_TO_PAY")
    with transaction.atomic():
        fields = []
        if not batch.debtor_iban:
            batch.debtor_name, batch.debtor_iban, batch.debtor_bic = debtor_of(settlement_settings())
            if not batch.debtor_iban:
                raise BusinessRuleViolation("PGI_SETTLEMENT_DEBTOR_IBAN is not set.", code="NO_DEBTOR_ACCOUNT")
            fields += ["debtor_name", "debtor_iban", "debtor_bic"]
        if not batch.payee_iban:
            merchant = batch.merchant
            if not merchant.settlement_iban:
                raise BusinessRuleViolation("The merchant has no settlement account.", code="NO_SETTLEMENT_ACCOUNT")
            batch.payee_name, batch.payee_iban, batch.payee_bic = (
                merchant.name, merchant.settlement_iban, merchant.settlement_bic
            )
            fields += ["payee_name", "payee_iban", "payee_bic"]
        if fields:
            batch.save(update_fields=[*fields, "updated_at"])
        if problem := account_problem(batch.debtor_iban, batch.debtor_bic):
            raise BusinessRuleViolation(
                f"The bank's own account (PGI_SETTLEMENT_DEBTOR_*): {problem}", code="INVALID_PAYOUT_FILE"
            )
        before = dict(batch.payout_files.values_list("kind", "sha256"))
        files = []
        for kind, (name, build) in payout_file_builders(batch).items():
            try:
                content = build()
            except NoPayeeBic as exc:
                raise BusinessRuleViolation(str(exc), code="NO_SETTLEMENT_BIC") from exc
            except (ValueError, etree.LxmlError) as exc:  # InvalidPayoutFile, or text lxml refuses
                raise BusinessRuleViolation(f"The {kind} file is not valid: {exc}", code="INVALID_PAYOUT_FILE") from exc
            file, _ = PayoutFile.objects.update_or_create(
                batch=batch,
                kind=kind,
                defaults={"name": name, "content": content, "sha256": hashlib.sha256(content).hexdigest()},
            )
            files.append(file)
        if rebuilt_by is not None:
            changes = [
                f"{f.kind} {before[f.kind][:12]}…" + ("" if before[f.kind] == f.sha256 else f" → {f.sha256[:12]}…")
                if f.kind in before else f"{f.kind} new {f.sha256[:12]}…"
                for f in files
            ]
            same = all(before.get(f.kind) == f.sha256 for f in files)
            audit_record(actor=actor, action="settlement_batch.payout_files_rebuild", obj=batch,
                         before={k: before.get(k) for k in (f.kind for f in files)}, after={f.kind: f.sha256 for f in files})  # fmt: skip
            SettlementStatusChange.objects.create(
                batch=batch, from_status=batch.status, to_status=batch.status, changed_by=rebuilt_by,
                reason=clip(f"Payout files built again ({'identical' if same else 'changed'}): {', '.join(changes)}", 255),
            )
        return files
