"""The daily settlement job (beat's `settle-daily`, at the cut-off time and zone of its schedule)."""

import logging

from celery import shared_task

from pgi.errors import BusinessRuleViolation

from . import services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def settlements_settle() -> dict[str, int]:
    """Settle up to the latest cut-off. A rerun (beat firing twice, a redelivered message, a second
    worker) finds the batches made and adds nothing. On SQLite (`make run`'s default database)
    settlement does not run: it is logged and skipped, every day, instead of failing."""
    try:
        outcomes = services.settlement_run(cutoff=services.settlement_cutoff_latest())
    except BusinessRuleViolation as exc:
        if exc.code != "SETTLEMENT_NEEDS_POSTGRESQL":
            raise
        logger.warning("settle-daily skipped: %s", exc.message)
        return {"batches": 0, "pairs": 0}
    return {"batches": sum(outcome.created for outcome in outcomes), "pairs": len(outcomes)}
