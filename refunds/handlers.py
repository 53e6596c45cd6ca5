"""Gateway notifications about refunds, applied to them. Registered in RefundsConfig.ready().

gateways stores each notification and calls this inside the same transaction; it finds the refund
the notice names and returns the (outcome, detail) kept on the notification's row.
"""

from django.db import transaction

from gateways.base import WebhookEvent
from gateways.models import GatewayNotification
from pgi.text import clip

from .models import Refund, RefundSource
from .services import refund_apply_result, refund_lock

Outcome = GatewayNotification.Outcome


def refund_notification_apply(*, gateway: str, event: WebhookEvent) -> tuple[str, str]:
    refund = _refund_for(gateway, event)
    if refund is None:
        return Outcome.UNMATCHED, "no refund of this gateway has this id or reference"
    if event.refund_result is None:
        return Outcome.RECORDED, f"refund notice kept for refund {refund.id}"
    with transaction.atomic():
        # What the refund is before this notice, read under the lock that applying it takes: read
        # earlier, a send that completed it meanwhile would be reported as this notice's doing.
        locked = refund_lock(refund.id)
        before = locked.status, locked.needs_attention
        after = refund_apply_result(
            refund_id=refund.id,
            result=event.refund_result,
            source=RefundSource.WEBHOOK,
            reason=f"{gateway} notice {event.raw_type or 'refund'}",
        )
    if after.needs_attention and not before[1]:
        return Outcome.FLAGGED, clip(after.attention_reason, 255)
    if after.status != before[0]:
        return Outcome.APPLIED, f"refund {refund.id}: {before[0]} → {after.status}"
    return Outcome.IGNORED, f"refund {refund.id} is {after.status}; nothing to change"


def _refund_for(gateway: str, event: WebhookEvent) -> Refund | None:
    """The refund of this gateway the notice names: by PGI's refund id, else by the gateway's
    reference of the refund."""
    refunds = Refund.objects.filter(gateway=gateway)
    if event.refund_id:
        refund = refunds.filter(pk=event.refund_id).first()
        if refund is not None:
            return refund
    reference = event.refund_result.reference if event.refund_result is not None else ""
    if reference:
        return refunds.filter(gateway_reference=reference).first()
    return None
