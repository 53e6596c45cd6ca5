"""Reconciliation's reads for the finance UI and the admin: runs with their totals, exceptions with
filters, open exceptions by age. Querysets stay lazy so views paginate them; no N+1 (totals come by
one prefetch, open counts by one annotation)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import BooleanField, Case, Count, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from .models import Category, ReconciliationException, ReconciliationRun, ReconciliationTotal

# The age buckets of open exceptions (days since first seen): (label, from days, to days or None).
AGE_BUCKETS = (
    ("under 1 day", 0, 1),
    ("1-3 days", 1, 3),
    ("3-7 days", 3, 7),
    ("over 7 days", 7, None),
)


def overdue_before(now: dt.datetime | None = None) -> dt.datetime:
    """Open exceptions first seen before this moment are overdue (PGI_RECONCILIATION overdue_days)."""
    return (now or timezone.now()) - dt.timedelta(days=settings.PGI_RECONCILIATION["overdue_days"])


def _totals_by_currency(totals) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for total in totals:
        out.setdefault(total.currency, {})[total.category] = {
            "count": total.count,
            "report_amount": total.report_amount,
            "pgi_amount": total.pgi_amount,
            "report_fee": total.report_fee,
            "pgi_fee": total.pgi_fee,
            "fee_differences": total.fee_differences,
            "webhook_amount": total.webhook_amount,
        }
    return out


class _RunQuerySet(QuerySet):
    """Sets totals_by_currency on each run as it is fetched (from the prefetched totals)."""

    def _fetch_all(self):
        super()._fetch_all()
        for run in self._result_cache or ():
            if isinstance(run, ReconciliationRun) and not hasattr(run, "totals_by_currency"):
                run.totals_by_currency = _totals_by_currency(run.totals.all())


def reconciliation_runs(
    *, gateway: str | None = None, day_from: dt.date | None = None, day_to: dt.date | None = None,
    status: str | None = None,
) -> QuerySet[ReconciliationRun]:  # fmt: skip
    """Runs, newest day first, with `open_exceptions`, `overdue_exceptions` and (once fetched)
    `totals_by_currency`; one query for the runs and one for all their totals."""
    before = overdue_before()
    present_open = Q(exceptions__present=True, exceptions__resolution="")
    runs = _RunQuerySet(model=ReconciliationRun).select_related("report").defer("report__content")
    if gateway:
        runs = runs.filter(gateway=gateway)
    if day_from:
        runs = runs.filter(day__gte=day_from)
    if day_to:
        runs = runs.filter(day__lte=day_to)
    if status:
        runs = runs.filter(status=status)
    return runs.annotate(
        open_exceptions=Count("exceptions", filter=present_open),
        overdue_exceptions=Count("exceptions", filter=present_open & Q(exceptions__first_seen_at__lt=before)),
    ).prefetch_related(
        Prefetch("totals", queryset=ReconciliationTotal.objects.order_by("currency", "category"))
    ).order_by("-day", "gateway")  # explicit: Meta.ordering does not apply to a GROUP BY query


def reconciliation_run_get(*, run_id: int) -> ReconciliationRun | None:
    return reconciliation_runs().filter(pk=run_id).first()


def reconciliation_exceptions(
    *,
    run: ReconciliationRun | int | None = None,
    category: str | None = None,
    gateway: str | None = None,
    currency: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
    resolved: bool | None = None,
    overdue: bool | None = None,
    search: str = "",
    day_from: dt.date | None = None,
    day_to: dt.date | None = None,
    include_gone: bool = False,
) -> QuerySet[ReconciliationException]:
    """Exceptions, newest day first, each with `overdue` (open and first seen more than overdue_days
    ago). Filters combine; `search` is an exact payment, refund or gateway reference, or the start
    of the exception's reference. Those a later run no longer found (resolved, kept) only with
    include_gone."""
    before = overdue_before()
    qs = ReconciliationException.objects.select_related("resolved_by", "run")
    if not include_gone:
        qs = qs.filter(present=True)
    if run is not None:
        qs = qs.filter(run=run)
    if category:
        qs = qs.filter(category=category)
    if gateway:
        qs = qs.filter(gateway=gateway)
    if currency:
        qs = qs.filter(currency=currency.upper())
    if amount_min is not None:
        qs = qs.filter(amount__gte=amount_min)
    if amount_max is not None:
        qs = qs.filter(amount__lte=amount_max)
    if resolved is True:
        qs = qs.exclude(resolution="")
    elif resolved is False:
        qs = qs.filter(resolution="")
    if overdue is True:
        qs = qs.filter(resolution="", first_seen_at__lt=before)
    elif overdue is False:
        qs = qs.exclude(resolution="", first_seen_at__lt=before)
    if day_from:
        qs = qs.filter(day__gte=day_from)
    if day_to:
        qs = qs.filter(day__lte=day_to)
    term = (search or "").strip()
    if term:
        qs = qs.filter(
            Q(reference__startswith=term) | Q(payment_id=term) | Q(refund_id=term) | Q(gateway_reference=term)
            | Q(report_payment_id=term)
        )  # fmt: skip
    return qs.annotate(
        overdue=Case(
            When(resolution="", first_seen_at__lt=before, then=Value(True)), default=Value(False),
            output_field=BooleanField(),
        )  # fmt: skip
    ).order_by("-day", "gateway", "category", "id")


@dataclass(frozen=True)
class AgeBucket:
    label: str
    count: int
    overdue: bool  # the whole bucket is past overdue_days


def reconciliation_open_exceptions_by_age(*, gateway: str | None = None) -> list[AgeBucket]:
    """Open exceptions (found by their day's last run) counted by days since first seen, in one query."""
    now = timezone.now()
    qs = ReconciliationException.objects.filter(present=True, resolution="")
    if gateway:
        qs = qs.filter(gateway=gateway)
    aggregates = {}
    for index, (_, low, high) in enumerate(AGE_BUCKETS):
        condition = Q(first_seen_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            condition &= Q(first_seen_at__gt=now - dt.timedelta(days=high))
        aggregates[f"b{index}"] = Count("id", filter=condition)
    counts = qs.aggregate(**aggregates)
    overdue_days = settings.PGI_RECONCILIATION["overdue_days"]
    return [
        AgeBucket(label=label, count=counts[f"b{index}"], overdue=low >= overdue_days)
        for index, (label, low, _) in enumerate(AGE_BUCKETS)
    ]


def reconciliation_category_choices() -> list[tuple[str, str]]:
    """The categories an exception can have (all but matched), for filters."""
    return [(c.value, c.label) for c in Category if c != Category.MATCHED]


def reconciliation_exception_get(*, exception_id: int) -> ReconciliationException | None:
    """One exception (found or no longer found), with `overdue`."""
    return reconciliation_exceptions(include_gone=True).filter(pk=exception_id).first()


def reconciliation_gateway_choices() -> list[str]:
    """The gateways finance can pick: those configured, then any that only has runs (removed since)."""
    from gateways.registry import configured_codes

    codes = list(configured_codes())
    for code in ReconciliationRun.objects.order_by("gateway").values_list("gateway", flat=True).distinct():
        if code not in codes:
            codes.append(code)
    return codes
