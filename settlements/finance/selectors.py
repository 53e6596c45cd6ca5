"""The finance UI's reads: the dashboard's figures and the settlement batch list with its filters.

Every figure is counted and summed in SQL; Python only merges the few rows that come back (today's
live figures with the rolled-up past days).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, QuerySet, Sum

from payments.selectors import GatewayDayFigures
from pgi.money import quantize
from settlements.models import BatchStatus, SettlementBatch

from .models import PaymentDayTotal
from .services import WINDOW_DAYS, day_start, payment_day_rows, window_days

FIGURE_FIELDS = ("payments", "accepted", "failed", "open", "charged")


@dataclass(frozen=True)
class DayCounts:
    """All gateways and currencies on one day (counts only: amounts in different currencies do not add)."""

    day: dt.date
    payments: int = 0
    accepted: int = 0
    failed: int = 0
    open: int = 0

    @property
    def success_rate(self) -> Decimal | None:
        decided = self.accepted + self.failed
        return None if not decided else (Decimal(100 * self.accepted) / decided).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class PaymentFigures:
    today: dt.date
    days: int
    today_rows: list[GatewayDayFigures]  # per gateway and currency, today
    window_rows: list[GatewayDayFigures]  # per gateway and currency, the window including today
    daily: list[DayCounts]  # one per day of the window, oldest first
    daily_by_gateway: dict[str, list[DayCounts]]  # the same per gateway

    @property
    def window_counts(self) -> DayCounts:
        """The whole window, all gateways (dated today)."""
        return DayCounts(self.today, *(sum(getattr(d, name) for d in self.daily) for name in FIGURE_FIELDS[:4]))


def _figures(rows) -> list[GatewayDayFigures]:
    return [
        GatewayDayFigures(
            gateway=row["gateway"], currency=row["currency"],
            **{name: row[name] for name in FIGURE_FIELDS if name != "charged"},
            charged=quantize(row["charged"], row["currency"]),
        )
        for row in sorted(rows, key=lambda row: (row["gateway"], row["currency"]))
    ]


# The gateway shown for payments that failed before any gateway was chosen (no route).
NO_ROUTE = "no route"


def payment_figures(*, today: dt.date, days: int = WINDOW_DAYS) -> PaymentFigures:
    """Today's figures live and the window's past days from their roll-up (two queries). Days that
    were never rolled up count as empty: the view rolls them up first (services.payment_days_missing)."""
    window = window_days(today, days)
    live = list(payment_day_rows(start=day_start(today), end=day_start(today + dt.timedelta(days=1)), by_day=False))
    past = PaymentDayTotal.objects.filter(day__gte=window[0], day__lt=today).values("day", "gateway", *FIGURE_FIELDS, "currency")
    totals: dict[tuple[str, str], dict] = {}
    per_day: dict[tuple[str, dt.date], dict] = defaultdict(lambda: dict.fromkeys(FIGURE_FIELDS[:4], 0))
    for row in [*past, *({**row, "day": today} for row in live)]:
        key = (row["gateway"], row["currency"])
        total = totals.setdefault(key, {"gateway": row["gateway"], "currency": row["currency"], **dict.fromkeys(FIGURE_FIELDS, 0)})
        for name in FIGURE_FIELDS:
            total[name] += row[name]
        for gateway in ("", row["gateway"] or NO_ROUTE):
            counts = per_day[(gateway, row["day"])]
            for name in FIGURE_FIELDS[:4]:
                counts[name] += row[name]
    gateways = sorted({gateway for gateway, _ in per_day if gateway})
    return PaymentFigures(
        today=today,
        days=days,
        today_rows=_figures(live),
        window_rows=_figures(totals.values()),
        daily=[DayCounts(day=day, **per_day.get(("", day), {})) for day in window],
        daily_by_gateway={g: [DayCounts(day=day, **per_day.get((g, day), {})) for day in window] for g in gateways},
    )


@dataclass(frozen=True)
class SettlementTotal:
    status: str
    status_label: str
    currency: str
    batches: int
    net: Decimal


OUTSTANDING = (BatchStatus.PENDING, BatchStatus.HELD)


def settlement_totals(*, today: dt.date, days: int = WINDOW_DAYS) -> tuple[list[SettlementTotal], list[SettlementTotal]]:
    """(the window's batches by cut-off, per payout status and currency; every batch not paid out
    yet, whatever its age, per status and currency): two GROUP BYs over the batches."""
    labels = dict(BatchStatus.choices)

    def grouped(qs) -> list[SettlementTotal]:
        rows = qs.order_by().values("status", "currency").annotate(batches=Count("pk"), net=Sum("net_amount"))
        return [
            SettlementTotal(row["status"], labels.get(row["status"], row["status"]), row["currency"], row["batches"],
                            quantize(row["net"], row["currency"]))
            for row in sorted(rows, key=lambda r: (list(labels).index(r["status"]) if r["status"] in labels else 99, r["currency"]))
        ]

    since = day_start(window_days(today, days)[0])
    return (
        grouped(SettlementBatch.objects.filter(cutoff__gte=since)),
        grouped(SettlementBatch.objects.filter(status__in=OUTSTANDING)),
    )


@dataclass(frozen=True)
class BatchFilters:
    merchant: str = ""
    currency: str = ""
    status: str = ""
    cutoff_from: dt.date | None = None
    cutoff_to: dt.date | None = None


def finance_batch_list(*, filters: BatchFilters) -> QuerySet[SettlementBatch]:
    """Every merchant's batches, newest first, narrowed by the filters (cut-off days inclusive, UTC)."""
    qs = SettlementBatch.objects.select_related("merchant").order_by("-cutoff", "-id")
    if filters.merchant:
        qs = qs.filter(merchant__code=filters.merchant)
    if filters.currency:
        qs = qs.filter(currency=filters.currency)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.cutoff_from:
        qs = qs.filter(cutoff__gte=day_start(filters.cutoff_from))
    if filters.cutoff_to:
        qs = qs.filter(cutoff__lt=day_start(filters.cutoff_to + dt.timedelta(days=1)))
    return qs


def batch_status_history(*, batch: SettlementBatch):
    return batch.status_changes.order_by("created_at", "id")




def reconciliation_days(*, day_from: dt.date, day_to: dt.date):
    """Each gateway's runs of the days, with `has_open` and `has_overdue`: whether the run's last
    pass left an exception open (overdue). EXISTS stops at the first such exception, so the
    dashboard's grid costs one query whatever the number of exceptions (the runs list counts them)."""
    from settlements.reconciliation.models import ReconciliationException, ReconciliationRun
    from settlements.reconciliation.selectors import overdue_before

    open_ones = ReconciliationException.objects.open().filter(run=OuterRef("pk"), present=True)
    return (
        ReconciliationRun.objects.filter(day__gte=day_from, day__lte=day_to)
        .only("id", "gateway", "day", "status", "exception_count", "matched_count")
        .annotate(has_open=Exists(open_ones), has_overdue=Exists(open_ones.filter(first_seen_at__lt=overdue_before())))
        .order_by("gateway", "day")
    )
