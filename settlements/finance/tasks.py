"""Beat's `finance-daily-figures` job (hourly): the dashboard's daily payment figures."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def finance_daily_figures_refresh() -> int:
    """Idempotent: rolls the same days up again to the same figures."""
    return services.payment_days_refresh()
