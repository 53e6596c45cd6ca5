"""The gateways app's Celery tasks, where Celery's autodiscovery looks for them (`<app>.tasks`).

The simulator's task lives with the simulator; importing it here registers it in every worker under
its unchanged name, gateways.tasks.simulator_webhook_send.
"""

from .simulator.tasks import simulator_refund_webhook_send, simulator_webhook_send  # noqa: F401
