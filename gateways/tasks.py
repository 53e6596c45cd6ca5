import logging

import requests
from celery import shared_task
from django.conf import settings

from .models import SimulatorCharge
from .registry import get_connector

logger = logging.getLogger(__name__)


@shared_task(
    autoretry_for=(requests.RequestException,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
)
def simulator_webhook_send(reference: str, code: str = "simulator") -> None:
    """The simulator finishes a pending charge and notifies PGI like a remote gateway would: a
    signed HTTP POST to PGI's webhook URL, retried with backoff until PGI answers 2xx."""
    SimulatorCharge.objects.filter(reference=reference, status=SimulatorCharge.Status.PENDING).update(
        status=SimulatorCharge.Status.SUCCEEDED
    )
    charge = SimulatorCharge.objects.get(reference=reference)
    connector = get_connector(code)
    body = connector.webhook_body(charge)
    url = f"{settings.PGI_PUBLIC_URL.rstrip('/')}/v1/gateways/{code}/webhooks"
    response = requests.post(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Simulator-Signature": connector.signature(body)},
        timeout=10,
    )
    response.raise_for_status()
    logger.info("simulator webhook for %s delivered: %s", reference, response.status_code)
