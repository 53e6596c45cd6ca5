"""Beat jobs for payments: recovery of unknown outcomes and expiry of uncaptured authorizations.

Both are safe to run concurrently and repeatedly: they claim their work under row locks and every
gateway call they make carries the payment's idempotency key.
"""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def payments_recover() -> dict[str, int]:
    return services.payments_recover()


@shared_task(ignore_result=True)
def authorizations_expire() -> int:
    return services.authorizations_expire()
