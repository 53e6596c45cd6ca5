"""Payment requests from Kafka processed through the same services as POST /v1/payments.

Idempotent by request id: the PaymentRequest row commits with its payment (payment_process's
`link`), so a message delivered again creates nothing; the same id meaning something else is
refused. The gateway call happens after that commit, as for the REST API.
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import Payment
from payments.services import payment_process, payment_validate
from pgi.api.idempotency import request_fingerprint
from pgi.errors import ApplicationError
from pgi.merchants.models import ApiKey
from pgi.merchants.principals import Principal
from pgi.merchants.services import api_key_create

from .messages import PaymentRequestMessage, PaymentRequestMessageSerializer, Refused
from .models import PaymentRequest

logger = logging.getLogger(__name__)


class RequesterKeyRevoked(Exception):
    """Every platform key with the consumer's name is revoked: staff stopped it taking payments."""


@dataclass(frozen=True)
class Origin:
    """Where the message was read."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Handled:
    payment: Payment
    created: bool  # False: the request id had already created this payment (a redelivery)


def requester_principal(*, name: str) -> Principal:
    """Who the consumer acts as: the oldest active platform key named `name`, created on first use.

    The bank systems that write `payment-requests` are authorized by the broker (who may produce to
    the topic), not by a PGI key; inside PGI every payment names the key it was taken under, and
    this one says "came from payment-requests". Its secret is thrown away, so it opens no door to
    the REST API. Raises RequesterKeyRevoked when keys of that name exist and all are revoked or
    expired: such a key stops the consumer taking payments, as it stops a REST client.
    """
    keys = ApiKey.objects.filter(name=name, is_platform=True)
    if not keys.exists():
        api_key_create(name=name, merchant=None)  # two consumers starting at once: both use the oldest
    now = timezone.now()
    usable = keys.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)
    active = usable.order_by("created_at", "pk").first()
    if active is None:
        raise RequesterKeyRevoked(f"the platform key {name!r} of the payment-requests consumer is revoked or expired")
    return Principal(api_key=active)


def _meaning(message: PaymentRequestMessage) -> dict:
    """The payment asked for, defaults applied: with no reference of its own the request id names
    it, so every event of the payment names its request."""
    return {**message.payment, "reference": message.payment["reference"] or message.request_id}


def _fingerprint(message: PaymentRequestMessage) -> str:
    return request_fingerprint("KAFKA", "payment-requests", _meaning(message))


def _already(message: PaymentRequestMessage, fingerprint: str) -> Handled | None:
    """The payment this request id created, None if none; Refused if the id came with another meaning."""
    found = PaymentRequest.objects.select_related("payment__merchant").filter(request_id=message.request_id).first()
    if found is None:
        return None
    if found.fingerprint != fingerprint:
        raise Refused(
            "REQUEST_ID_REUSED",
            f"Request id {message.request_id} was used for another payment request ({found.payment_id}).",
            request_id=message.request_id,
        )
    return Handled(payment=found.payment, created=False)


def payment_request_process(*, message: PaymentRequestMessage, origin: Origin, principal: Principal) -> Handled:
    """Create and process the payment the message asks for, once per request id.

    Raises Refused (the message goes to the dead-letter topic): REQUEST_ID_REUSED, or the REST
    API's own codes for what payment_validate refuses (UNKNOWN_MERCHANT, MERCHANT_INACTIVE,
    CURRENCY_NOT_ENABLED, AMOUNT_OVER_LIMIT, VALIDATION_ERROR). A declined payment is no refusal:
    it is a Failed payment with its events. Database errors propagate: the caller tries again.
    """
    fingerprint = _fingerprint(message)
    handled = _already(message, fingerprint)
    if handled is not None:
        return handled
    try:
        draft = payment_validate(principal=principal, **PaymentRequestMessageSerializer.draft_fields(_meaning(message)))
    except ApplicationError as exc:
        details = "; ".join(f"{d.field}: {d.message}" if d.field else d.message for d in exc.details)
        raise Refused(exc.code, f"{exc.message} {details}".strip(), request_id=message.request_id) from exc

    def link(payment: Payment) -> None:
        PaymentRequest.objects.create(
            request_id=message.request_id,
            payment=payment,
            fingerprint=fingerprint,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
        )

    try:
        payment = payment_process(draft=draft, principal=principal, link=link)
    except IntegrityError:
        # Another consumer (a rebalance hands a partition over mid-message) created it first; this
        # payment rolled back with the row, before any gateway call.
        if transaction.get_connection().in_atomic_block:
            raise
        handled = _already(message, fingerprint)
        if handled is None:
            raise
        logger.info("payment request %s was created meanwhile by another consumer", message.request_id)
        return handled
    return Handled(payment=payment, created=True)
