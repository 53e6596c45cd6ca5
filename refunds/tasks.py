"""Celery tasks for refunds: send one right after it is accepted, and the batch job that sweeps
whatever is due (bulk-file refunds, retries, anything the first task missed)."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def refund_send(refund_id: str) -> str:
    """Send a refund just accepted, unless another worker (the batch job) already holds it."""
    if not services.refund_claim(refund_id):
        return "skipped"
    return services.refund_send(refund_id=refund_id)


@shared_task(ignore_result=True)
def refunds_process() -> dict[str, int]:
    return services.refunds_process_run()
