"""The simulator's Celery task: completing a pending charge and notifying PGI, as a remote gateway would."""

import logging

import requests
from celery import shared_task
from django.conf import settings

from ..registry import get_connector
from .ledger import simulator_charge_complete, simulator_refund_complete
from .webhooks import SIGNATURE_HEADER

logger = logging.getLogger(__name__)


@shared_task(
    # The name it had in gateways/tasks.py: messages already queued (and any schedule) name it so.
    name="gateways.tasks.simulator_webhook_send",
    autoretry_for=(requests.RequestException,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
)
def simulator_webhook_send(reference: str, code: str = "simulator") -> None:
    """The simulator with gateway code `code` finishes a pending charge and notifies PGI like a
    remote gateway would: a signed HTTP POST to PGI's webhook URL for that code, retried with
    backoff until PGI answers 2xx. The event id names the charge and its state, so a retry after a
    lost answer is a duplicate PGI recognizes."""
    charge = simulator_charge_complete(code=code, reference=reference)
    _deliver(code, get_connector(code).webhook_body(charge), reference)


def _deliver(code: str, body: bytes, reference: str) -> None:
    """POST a signed notification to PGI's webhook URL for `code`; raises for a non-2xx answer
    (the task retries)."""
    url = f"{settings.PGI_PUBLIC_URL.rstrip('/')}/v1/gateways/{code}/webhooks"
    response = requests.post(
        url,
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: get_connector(code).signature(body)},
        timeout=10,
    )
    response.raise_for_status()
    logger.info("%s webhook for %s delivered: %s", code, reference, response.status_code)


@shared_task(
    name="gateways.tasks.simulator_refund_webhook_send",
    autoretry_for=(requests.RequestException,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
)
def simulator_refund_webhook_send(reference: str, code: str = "simulator") -> None:
    """The simulator completes a pending refund and notifies PGI, as simulator_webhook_send does
    for a pending charge."""
    refund = simulator_refund_complete(code=code, reference=reference)
    _deliver(code, get_connector(code).webhook_body(refund.charge, refund=refund), reference)
