"""Reconciliation's beat jobs: `reconcile-daily-<gateway>` (one per gateway, its day lag_days back)
and `reconcile-inbox` (report files dropped in PGI_RECONCILIATION inbox_dir)."""

import datetime as dt

from celery import shared_task

from pgi.errors import ServiceUnavailable

from . import services
from .models import RunTrigger

# A gateway publishes its report some hours after the day ends: try again every half hour, for a day.
REPORT_RETRY_SECONDS = 1800
REPORT_RETRIES = 48


@shared_task(bind=True, ignore_result=True, max_retries=REPORT_RETRIES)
def reconciliation_reconcile_gateway(self, gateway: str, day: str | None = None) -> dict:
    """Fetch the gateway's report of `day` (ISO; default: lag_days before today) unless it is loaded,
    and reconcile the day. A rerun (beat firing twice, a redelivery) reconciles the same day again
    and counts nothing twice."""
    chosen = dt.date.fromisoformat(day) if day else services.reconciliation_day_default()
    try:
        outcome = services.reconciliation_run(gateway=gateway, day=chosen, trigger=RunTrigger.BEAT)
    except ServiceUnavailable as exc:
        raise self.retry(exc=exc, countdown=REPORT_RETRY_SECONDS, kwargs={"gateway": gateway, "day": chosen.isoformat()})
    return {"run": outcome.run.pk, "lines": outcome.totals.lines, "exceptions": outcome.totals.exceptions}


@shared_task(ignore_result=True)
def reconciliation_inbox() -> dict:
    """Load and reconcile the report files waiting in the inbox."""
    outcomes = services.reconciliation_inbox_process()
    return {"processed": sum(o.ok for o in outcomes), "failed": sum(not o.ok for o in outcomes)}
