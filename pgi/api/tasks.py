from celery import shared_task

from .services import idempotency_keys_purge as purge


@shared_task
def idempotency_keys_purge() -> int:
    return purge()
