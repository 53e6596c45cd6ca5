"""Gateway notifications: recorded once, applied by the app that owns them, never lost."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from pgi.money import is_storable_amount
from pgi.retention import delete_in_batches, retention_cutoff
from pgi.text import clip

from .base import WebhookEvent, shape_problem
from .handlers import notification_apply
from .models import GatewayNotification

logger = logging.getLogger(__name__)

Outcome = GatewayNotification.Outcome


@dataclass(frozen=True)
class Receipt:
    notification: GatewayNotification
    duplicate: bool

    @property
    def matched(self) -> bool:
        return self.notification.outcome != Outcome.UNMATCHED


def notification_receive(*, gateway: str, event: WebhookEvent) -> Receipt:
    """Record one verified notification and apply it to its payment, in one transaction.

    The row and the payment's move commit together, so a notification is either fully handled or
    not at all (the gateway delivers it again). A second delivery of the same event id hits the
    unique constraint and changes nothing. A notification naming no payment of this gateway is kept
    as `unmatched` for reconciliation. Refund notifications are recorded; refunds are applied by the
    refunds service.
    """
    result = event.result or event.refund_result
    with transaction.atomic():
        try:
            # Only this insert may hit the unique constraint; a concurrent copy waits here until
            # the first commits, then finds it. Errors applying the notice are not duplicates.
            with transaction.atomic():
                notification = GatewayNotification.objects.create(
                    gateway=gateway,
                    # Identifiers whole (notification_problem refused any too long): a cut one
                    # could equal another event's or payment's. Descriptive text may be cut.
                    event_id=event.event_id,
                    event_type=clip(event.raw_type, 64),
                    operation=event.operation.value,
                    payment_id=event.payment_id,
                    refund_id=event.refund_id,
                    gateway_reference=event.gateway_reference or getattr(result, "reference", ""),
                    status=result.status.value if result else "",
                    amount=_storable(getattr(result, "amount", None)),
                    currency=getattr(result, "currency", "") or "",
                    error_code=clip(getattr(result, "error_code", ""), 64),
                    outcome=Outcome.RECORDED,
                )
        except IntegrityError:
            existing = GatewayNotification.objects.get(gateway=gateway, event_id=event.event_id)
            logger.info("notification %s from %s already received; dropped", event.event_id, gateway)
            return Receipt(notification=existing, duplicate=True)
        notification.outcome, notification.detail = notification_apply(gateway=gateway, event=event)
        notification.save(update_fields=["outcome", "detail"])
    return Receipt(notification=notification, duplicate=False)


def notification_problem(event: WebhookEvent) -> str:
    """Why a verified notification cannot be stored or applied ('' when it can). An identifier
    longer than its column is refused, never cut: no gateway sends one, and a cut event id would
    drop another event as its duplicate, a cut payment id or reference could name another payment."""
    problem = shape_problem(event)
    if problem:
        return f"The notification's {problem}."
    result = event.result or event.refund_result
    identifiers = [
        ("event_id", "event id", event.event_id),
        ("payment_id", "payment id", event.payment_id),
        ("refund_id", "refund id", event.refund_id),
        ("gateway_reference", "gateway reference", event.gateway_reference),
        ("gateway_reference", "gateway reference", getattr(result, "reference", "")),
        ("currency", "currency", getattr(result, "currency", "") or ""),
    ]
    for column, name, value in identifiers:
        limit = GatewayNotification._meta.get_field(column).max_length
        if len(value) > limit:
            return f"The notification's {name} is longer than {limit} characters."
    return ""


def _storable(amount):
    """The notice's amount as the column can hold it; an absurd one is not kept (the payment
    check flags it) rather than failing the whole delivery."""
    if amount is None or not is_storable_amount(amount):
        return None
    return amount


def notifications_prune(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete notifications received more than `older_than_days` (PGI_RETENTION
    gateway_notifications_days) ago, in batches; returns how many. What they did stays on the
    payments and refunds (their status history); the period must exceed every gateway's retry window
    (its dedupe is the row) and the days reconciliation may be run again for."""
    days = settings.PGI_RETENTION["gateway_notifications_days"] if older_than_days is None else older_than_days
    old = GatewayNotification.objects.filter(received_at__lt=retention_cutoff(days))
    return delete_in_batches(old, size=batch_size)
