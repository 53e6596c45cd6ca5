"""The simulator's ledger rows as the gateway reports them, and the one ledger write that no call
makes: a pending charge completing on its own."""

from decimal import Decimal

from django.db.models import F
from django.utils import timezone

from ..base import GatewayResult, GatewayStatus, RefundResult, RefundStatus
from .codes import MESSAGES
from .models import SimulatorCharge, SimulatorRefund

Status = SimulatorCharge.Status


def captured_total(charge: SimulatorCharge) -> Decimal:
    """What the charge captured: nothing unless it succeeded; its whole amount when a row says
    succeeded without a captured amount (set by hand, as tests do)."""
    if charge.status != Status.SUCCEEDED:
        return Decimal(0)
    return charge.amount if charge.captured_amount is None else charge.captured_amount


def charge_result(charge: SimulatorCharge) -> GatewayResult:
    """The charge as the gateway reports it; a captured charge reports the captured amount."""
    return GatewayResult(
        status=GatewayStatus(charge.status),
        reference=charge.reference,
        amount=captured_total(charge) if charge.status == Status.SUCCEEDED else charge.amount,
        currency=charge.currency,
        error_code=charge.decline_code,
        error_message=MESSAGES.get(charge.decline_code, ""),
    )


def refund_result(refund: SimulatorRefund) -> RefundResult:
    return RefundResult(
        status=RefundStatus(refund.status),
        reference=refund.reference,
        amount=refund.amount,
        currency=refund.currency,
        error_code=refund.error_code,
        error_message=refund.error_message,
    )


def simulator_refund_complete(*, code: str, reference: str) -> SimulatorRefund:
    """The simulator completes a pending refund (a conditional update: a retry changes nothing).
    Raises SimulatorRefund.DoesNotExist for an unknown reference."""
    refunds = SimulatorRefund.objects.filter(gateway=code, reference=reference)
    refunds.filter(status=SimulatorRefund.Status.PENDING).update(status=SimulatorRefund.Status.SUCCEEDED)
    return refunds.select_related("charge").get()


def simulator_charge_complete(*, code: str, reference: str) -> SimulatorCharge:
    """The simulator settles a pending charge: authorized when it was sent with capture=False, else
    captured in full. Conditional updates, so a retry or a second worker changes nothing. Returns
    the charge as it is now; raises SimulatorCharge.DoesNotExist for an unknown reference."""
    charges = SimulatorCharge.objects.filter(gateway=code, reference=reference)
    now = timezone.now()
    pending = charges.filter(status=Status.PENDING)
    pending.filter(capture=False).update(status=Status.AUTHORIZED, updated_at=now)
    pending.filter(capture=True).update(
        status=Status.SUCCEEDED, captured_amount=F("amount"), captured_at=now, updated_at=now
    )
    return charges.get()
