from celery import shared_task

from .services import events_prune as prune


@shared_task
def events_prune() -> int:
    """Beat, hourly: delete sent outbox rows older than PGI_EVENTS["retention_days"]."""
    return prune()
