"""Celery tasks of merchant webhooks, both on beat (pgi/settings.py CELERY_BEAT_SCHEDULE) and both
safe to run in parallel: rows and deliveries are claimed with SKIP LOCKED."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def webhooks_fan_out() -> int:
    """Beat, every 5 s: payment-events outbox rows become deliveries; wakes webhooks_send."""
    return services.webhooks_fan_out_run()


@shared_task(ignore_result=True)
def webhooks_send() -> int:
    """Beat, every 10 s (and woken by the fan-out and by redeliveries): send what is due."""
    return services.webhooks_send_run()


@shared_task(ignore_result=True)
def webhooks_prune() -> int:
    """Beat, hourly: delete finished deliveries older than PGI_WEBHOOKS["retention_days"]."""
    return services.deliveries_prune()
