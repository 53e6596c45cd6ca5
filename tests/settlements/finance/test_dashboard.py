"""The dashboard: today's figures live, the past days of the 30-day window from their roll-up,
settlement totals, charts as inline SVG, every table as CSV, in a fixed number of queries."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from settlements.finance.models import PaymentDayRollup, PaymentDayTotal
from settlements.finance.selectors import payment_figures
from settlements.finance.services import (
    payment_days_missing,
    payment_days_refresh,
    payment_days_roll_up,
    window_days,
)
from tests.factories import MerchantFactory

from .conftest import payment_on

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("finance:dashboard")


def by_key(rows):
    return {(r.gateway, r.currency): r for r in rows}


def csv_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_today_is_counted_live_per_gateway_and_currency(month_of_payments, today):
    figures = payment_figures(today=today)
    rows = by_key(figures.today_rows)

    usd = rows[("simulator", "USD")]
    assert (usd.payments, usd.accepted, usd.failed, usd.open) == (5, 3, 1, 1)
    assert usd.charged == Decimal("10.30")  # 10.00 + 0.10 + 0.20 (refunded later: still charged)
    assert usd.success_rate == Decimal("75.0")
    assert rows[("stripe", "EUR")].charged == Decimal("0.00")  # authorized, not captured


def test_the_window_adds_rolled_up_past_days_to_today_and_leaves_older_days_out(month_of_payments, today):
    payment_days_roll_up(days=payment_days_missing(today=today))
    rows = by_key(payment_figures(today=today).window_rows)

    assert rows[("simulator", "USD")].payments == 6
    assert rows[("stripe", "KWD")].charged == Decimal("1.500")  # three decimals, exactly
    assert rows[("stripe", "KWD")].success_rate == Decimal("50.0")
    eur = rows[("stripe", "EUR")]
    assert (eur.payments, eur.charged) == (2, Decimal("100.00"))  # not the 999.00 of 30 days ago


def test_the_daily_series_has_every_day_of_the_window_oldest_first(month_of_payments, today):
    payment_days_roll_up(days=payment_days_missing(today=today))
    daily = payment_figures(today=today).daily

    assert [d.day for d in daily] == window_days(today)
    assert daily[-1].payments == 6 and daily[-2].payments == 3 and daily[-8].payments == 1
    assert sum(d.payments for d in daily) == 10


def test_a_day_without_payments_is_rolled_up_once_and_not_counted_again(today, django_assert_num_queries):
    payment_days_roll_up(days=payment_days_missing(today=today))

    assert PaymentDayRollup.objects.count() == 29 and not PaymentDayTotal.objects.exists()
    assert payment_days_missing(today=today) == []


def test_rolling_a_day_up_again_replaces_its_figures(month_of_payments, today):
    yesterday = today - dt.timedelta(days=1)
    payment_days_roll_up(days=[yesterday])
    Payment.objects.filter(created_at__date=yesterday, status=PaymentStatus.FAILED).update(status=PaymentStatus.COMPLETED)

    payment_days_roll_up(days=[yesterday])

    kwd = PaymentDayTotal.objects.get(day=yesterday, gateway="stripe", currency="KWD")
    assert (kwd.payments, kwd.accepted, kwd.failed, kwd.charged) == (2, 2, 0, Decimal("3.7500"))


def test_today_is_never_rolled_up(month_of_payments, today):
    assert payment_days_roll_up(days=[today]) == 0
    assert not PaymentDayRollup.objects.filter(day=today).exists()


def test_the_hourly_job_rolls_up_days_that_are_not_final_yet_and_leaves_final_ones(today):
    now = timezone.now()
    old = today - dt.timedelta(days=5)
    payment_days_roll_up(days=window_days(today)[:-1], now=now)
    payment_on(old, merchant=MerchantFactory(code="late"), currency="USD")  # inserted late, as a fix would

    payment_days_refresh(now=now)

    assert not PaymentDayTotal.objects.filter(day=old).exists()  # final days are not read again
    payment_on(today - dt.timedelta(days=1), merchant=MerchantFactory(code="late"), currency="USD")
    payment_days_refresh(now=now)
    assert PaymentDayTotal.objects.get(day=today - dt.timedelta(days=1)).payments == 1


def test_the_dashboard_fills_missing_days_on_its_first_view_and_then_reads_the_roll_up(
    finance, month_of_payments, django_assert_num_queries
):
    assert finance.get(DASHBOARD).status_code == 200
    assert PaymentDayRollup.objects.count() == 29

    # session, user, permissions (user's, group's); missing days, today live, past days; two
    # settlement GROUP BYs; reconciliation runs of 14 days (no run: no totals to read), open
    # exceptions by age
    with django_assert_num_queries(11):
        response = finance.get(DASHBOARD)
    assert response.status_code == 200


def test_the_dashboard_shows_the_figures_and_its_charts(finance, month_of_payments, batch):
    response = finance.get(DASHBOARD)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="kpi-today">8<' in html  # six of the month's and the batch's two
    assert '<svg class="chart chart-bars"' in html and 'role="img"' in html
    assert '<svg class="chart chart-lines"' in html
    assert "1.500 KWD" in html
    assert "79.30 EUR" in html  # the batch's net in the settlement tables
    assert " style=" not in html  # the Content-Security-Policy allows no inline style


def test_the_dashboard_is_served_under_the_content_security_policy(finance, month_of_payments):
    response = finance.get(DASHBOARD)
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script" not in response.content.decode()


@pytest.mark.parametrize(
    ("table", "first_column"),
    [
        ("payments-today", "gateway"),
        ("payments-30-days", "gateway"),
        ("payments-daily", "gateway"),
        ("settlements-30-days", "payout_status"),
        ("settlements-outstanding", "payout_status"),
    ],
)
def test_every_dashboard_table_exports_as_csv(finance, month_of_payments, batch, table, first_column):
    response = finance.get(reverse("finance:dashboard-export", args=[table]))

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"{table}-" in response["Content-Disposition"]
    rows = csv_of(response)
    assert rows and next(iter(rows[0])) == first_column


def test_exported_figures_are_exact_decimals(finance, month_of_payments, batch):
    today = csv_of(finance.get(reverse("finance:dashboard-export", args=["payments-today"])))
    settled = csv_of(finance.get(reverse("finance:dashboard-export", args=["settlements-30-days"])))

    assert {(r["gateway"], r["currency"]): r["charged"] for r in today}[("simulator", "USD")] == "10.30"
    assert settled == [{"payout_status": batch.status, "currency": "EUR", "batches": "1", "net": "79.30"}]


def test_an_unknown_table_is_not_found(finance):
    assert finance.get(reverse("finance:dashboard-export", args=["passwords"])).status_code == 404
