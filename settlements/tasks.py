"""The daily settlement job (beat's `settle-daily`, at the cut-off time and zone of its schedule)."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def settlements_settle() -> dict[str, int]:
    """Settle up to the latest cut-off. A rerun (beat firing twice, a redelivered message, a second
    worker) finds the batches made and adds nothing."""
    outcomes = services.settlement_run(cutoff=services.settlement_cutoff_latest())
    return {"batches": sum(outcome.created for outcome in outcomes), "pairs": len(outcomes)}


# Reconciliation's jobs live in their package; importing them here registers them with Celery's
# autodiscovery (which reads <app>.tasks).
from settlements.reconciliation.tasks import reconciliation_inbox, reconciliation_reconcile_gateway  # noqa: E402,F401

# The finance dashboard's hourly job lives with the finance UI.
from .finance.tasks import finance_daily_figures_refresh  # noqa: F401
