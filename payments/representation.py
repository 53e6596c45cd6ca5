"""A payment as the API writes it (the `Payment` schema), without DRF's field machinery.

`PaymentOutputSerializer` declares the answer and stays its schema; building its 22 fields (DRF
finds, builds and deep-copies them for every serializer made) cost more CPU than the rest of a
GET by id. Its `to_representation` calls this function instead, which writes each field exactly
as its declaration would: tests/payments/test_payment_representation.py compares the two over
payments in every state, so a field added to one and not the other fails there.
"""

from __future__ import annotations

from pgi.api.serializers import utc_text
from pgi.cards import mask
from pgi.money import quantize

from .models import Payment


def payment_representation(payment: Payment, *, mask_accounts: bool = False) -> dict:
    currency = payment.currency
    captured = payment.captured_amount
    account = str(payment.from_account)
    return {
        "id": str(payment.id),
        "amount": quantize(payment.amount, currency),
        "currency": str(currency),
        "fromAccount": mask(account) if mask_accounts else account,
        "toMerchant": str(payment.merchant.code),
        "status": str(payment.status),
        "timestamp": utc_text(payment.status_changed_at),
        "reference": payment.reference or None,
        "description": payment.description or None,
        "metadata": {str(key): None if value is None else str(value) for key, value in payment.metadata.items()},
        "gateway": payment.gateway or None,
        "gatewayReference": payment.gateway_reference or None,
        "failureCode": payment.failure_code or None,
        "failureMessage": payment.failure_message or None,
        "refundedAmount": quantize(payment.refunded_amount, currency),
        "capture": payment.capture,
        "capturedAmount": None if captured is None else quantize(captured, currency),
        "authorizationExpiresAt": utc_text(payment.authorization_expires_at),
        "pendingOperation": payment.pending_operation or None,
        "settlementId": _text_or_none(getattr(payment, "settlement_id", None)),
        "createdAt": utc_text(payment.created_at),
        "updatedAt": utc_text(payment.updated_at),
    }


def _text_or_none(value) -> str | None:
    return None if value is None else str(value)
