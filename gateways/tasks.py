"""The gateways app's Celery tasks, where Celery's autodiscovery looks for them (`<app>.tasks`).

The simulator's task lives with the simulator; importing it here registers it in every worker under
its unchanged name, gateways.tasks.simulator_webhook_send.
"""

from celery import shared_task

from . import services
from .simulator.tasks import simulator_refund_webhook_send, simulator_webhook_send  # noqa: F401


@shared_task(ignore_result=True)
def gateway_notifications_prune() -> int:
    """Beat, hourly: delete notifications older than PGI_RETENTION["gateway_notifications_days"]."""
    return services.notifications_prune()
