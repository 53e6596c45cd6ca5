"""The finance dashboard's only write: the daily payment figures (PaymentDayTotal), rolled up
set-based.

One GROUP BY over the payments created in the days asked for (the created_at index bounds it) gives
at most days x gateways x currencies rows; they replace the days' earlier figures in one
transaction. Today is never rolled up: the dashboard counts it live. A day is rolled up again while
its payments may still change their answer (recovery asks gateways for hours): until it is
FINAL_AFTER past its end. Beat's `finance-daily-figures` job does that every hour; the dashboard
itself fills only days that were never rolled up (a fresh database, a job that did not run).
"""

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from payments.selectors import ACCEPTED, CHARGED

from .models import PaymentDayRollup, PaymentDayTotal

# A day's figures no longer change once its payments have their answers: recovery's looks span
# about 12 hours at most (PGI_RECOVERY), so a day rolled up a day after its end is final.
FINAL_AFTER = dt.timedelta(days=1)
WINDOW_DAYS = 30


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def payment_day_rows(*, start: dt.datetime, end: dt.datetime, by_day: bool):
    """Payments created in [start, end) counted per gateway and currency (and UTC day), in SQL."""
    rows = Payment.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    if by_day:
        rows = rows.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
    keys = ["day", "gateway", "currency"] if by_day else ["gateway", "currency"]
    return rows.values(*keys).annotate(
        payments=Count("pk"),
        accepted=Count("pk", filter=Q(status__in=ACCEPTED)),
        failed=Count("pk", filter=Q(status=PaymentStatus.FAILED)),
        open=Count("pk", filter=Q(status__in=(PaymentStatus.PENDING, PaymentStatus.PROCESSING))),
        charged=Sum(Coalesce("captured_amount", "amount"), filter=Q(status__in=CHARGED), default=Decimal(0)),
    )


def payment_days_roll_up(*, days: Iterable[dt.date], now: dt.datetime | None = None) -> int:
    """(Re)compute the figures of `days` (days before today only); returns the rows written.

    Concurrent runs for the same day are safe: rows are upserted (ON CONFLICT DO UPDATE), and the
    last to commit wins with figures at least as recent."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    wanted = sorted({day for day in days if day < today})
    if not wanted:
        return 0
    rows = [
        PaymentDayTotal(**row)
        for row in payment_day_rows(start=day_start(wanted[0]), end=day_start(wanted[-1] + dt.timedelta(days=1)), by_day=True)
        if row["day"] in wanted
    ]
    with transaction.atomic():
        # Replaced, not merged: a gateway and currency without payments now keeps no row. A run
        # beside this one inserts the same keys: ON CONFLICT makes the later one update instead.
        PaymentDayTotal.objects.filter(day__in=wanted).delete()
        PaymentDayTotal.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["day", "gateway", "currency"],
            update_fields=["payments", "accepted", "failed", "open", "charged"],
        )
        PaymentDayRollup.objects.bulk_create(
            [PaymentDayRollup(day=day, refreshed_at=now) for day in wanted],
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["refreshed_at"],
        )
    return len(rows)


def window_days(today: dt.date, days: int = WINDOW_DAYS) -> list[dt.date]:
    """The `days` UTC days ending with today, oldest first."""
    return [today - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]


def payment_days_missing(*, today: dt.date, days: int = WINDOW_DAYS) -> list[dt.date]:
    """The past days of the window that were never rolled up (one indexed query)."""
    past = window_days(today, days)[:-1]
    done = set(PaymentDayRollup.objects.filter(day__gte=past[0], day__lte=past[-1]).order_by().values_list("day", flat=True))
    return [day for day in past if day not in done]


def payment_days_refresh(*, now: dt.datetime | None = None, days: int = WINDOW_DAYS) -> int:
    """Beat's job: roll up the window's past days that were never rolled up or are not final yet."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    past = window_days(today, days)[:-1]
    final = {
        day
        for day, refreshed in PaymentDayRollup.objects.filter(day__gte=past[0]).values_list("day", "refreshed_at")
        if refreshed >= day_start(day) + dt.timedelta(days=1) + FINAL_AFTER
    }
    return payment_days_roll_up(days=[day for day in past if day not in final], now=now)


def finance_group_ensure():
    """The Finance group with the Finance role's permissions (pgi/staff/roles.py), created if a
    flushed test database lost it."""
    from pgi.staff.roles import FINANCE
    from pgi.staff.services import role_group_ensure

    return role_group_ensure(FINANCE)
