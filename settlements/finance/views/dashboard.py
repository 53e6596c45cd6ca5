"""The dashboard: payments today and over 30 days per gateway and currency, settlement totals, and
the reconciliation panels; each table with its CSV export."""

import datetime as dt

from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from .. import exports
from ..access import finance_required
from ..charts import Column, Segment, Series, legend, rate_lines, stacked_bars
from ..selectors import PaymentFigures, payment_figures, settlement_totals
from ..services import payment_days_missing, payment_days_roll_up

PERMISSIONS = ("payments.view_payment", "settlements.view_settlementbatch", "settlements.view_reconciliationrun")


def dashboard_reconciliation(today):
    from .reconciliation import (
        dashboard_reconciliation as panels,  # the module imports this one
    )

    return panels(today)


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def _figures(today: dt.date) -> PaymentFigures:
    # Normally beat's hourly job has rolled the past days up and this is one small query; on a fresh
    # database the first page view rolls them up (one GROUP BY over those days).
    missing = payment_days_missing(today=today)
    if missing:
        payment_days_roll_up(days=missing)
    return payment_figures(today=today)


def _charts(figures: PaymentFigures) -> dict:
    labels = [day.strftime("%m-%d") for day in (d.day for d in figures.daily)]
    volume = stacked_bars(
        label_id="chart-volume",
        title=f"Payments per day, last {figures.days} days, all gateways",
        description="Bars per UTC day: accepted, failed and without an answer yet, stacked. The table "
        "“Last 30 days” has the figures per gateway and currency.",
        columns=[
            Column(
                label=label,
                tooltip=f"{d.day.isoformat()}: {d.payments:,} payments, {d.accepted:,} accepted, {d.failed:,} failed, "
                f"{d.open:,} without an answer" + (f", {d.success_rate} % success" if d.success_rate is not None else ""),
                segments=[Segment("accepted", d.accepted), Segment("failed", d.failed), Segment("open", d.open)],
            )
            for label, d in zip(labels, figures.daily, strict=True)
        ],
    )
    gateways = list(figures.daily_by_gateway)
    rates = rate_lines(
        label_id="chart-rates",
        title=f"Success rate per gateway and day, last {figures.days} days",
        description="Accepted out of answered payments, per gateway, in per cent; a gap is a day without answered payments.",
        labels=labels,
        series=[Series(g, [d.success_rate for d in figures.daily_by_gateway[g]]) for g in gateways],
    )
    return {
        "volume_chart": volume,
        "volume_legend": legend([("bar-accepted", "accepted"), ("bar-failed", "failed"), ("bar-open", "no answer yet")]),
        "rates_chart": rates,
        "rates_legend": legend([(f"series-{i % 6}", g) for i, g in enumerate(gateways)]),
    }


@finance_required(*PERMISSIONS)
def dashboard(request):
    today = utc_today()
    figures = _figures(today)
    window_totals, outstanding = settlement_totals(today=today)
    context = {
        "figures": figures,
        "today": figures.daily[-1],
        "window": figures.window_counts,
        "outstanding_batches": sum(t.batches for t in outstanding),
        "window_start": figures.daily[0].day,
        "window_totals": window_totals,
        "outstanding": outstanding,
        **_charts(figures),
        **dashboard_reconciliation(today),
        "nav": "dashboard",
    }
    return render(request, "finance/dashboard.html", context)


TABLES = (
    "payments-today", "payments-30-days", "payments-daily", "settlements-30-days", "settlements-outstanding",
    "reconciliation-days", "exceptions-by-age",
)


@finance_required(*PERMISSIONS)
def dashboard_export(request, table: str):
    """One of the dashboard's tables as CSV (TABLES)."""
    if table not in TABLES:
        raise Http404("No such table.")
    today = utc_today()
    name = f"{table}-{today.isoformat()}"
    if table in ("reconciliation-days", "exceptions-by-age"):
        panels = dashboard_reconciliation(today)
        if table == "exceptions-by-age":
            return exports.ages_csv(name, panels["ages"])
        return exports.reconciliation_days_csv(name, panels["recon_grid"])
    if table.startswith("settlements"):
        window_totals, outstanding = settlement_totals(today=today)
        return exports.settlement_totals_csv(name, window_totals if table == "settlements-30-days" else outstanding)
    figures = _figures(today)
    if table == "payments-daily":
        return exports.daily_csv(figures)
    return exports.figures_csv(name, figures.today_rows if table == "payments-today" else figures.window_rows)
