"""Stripe's PaymentIntents and Refunds as PGI's results, for the calls, the webhooks and the report."""

from typing import Any

from ..base import ErrorCode, GatewayResult, GatewayStatus, RefundResult, RefundStatus
from .amounts import from_minor_units
from .codes import AUTHENTICATION_MESSAGE, DECLINE_CODES, REFUND_FAILURES, REFUND_STATUSES

# PGI's ids in Stripe's metadata: the PaymentIntent's (payment, merchant) and each Refund's.
METADATA_PAYMENT_ID = "pgi_payment_id"
METADATA_MERCHANT = "pgi_merchant"
METADATA_REFUND_ID = "pgi_refund_id"
METADATA_REASON = "pgi_reason"
METADATA_VALUE_MAX = 500  # Stripe's limit on a metadata value


def value_of(obj: Any, key: str) -> Any:
    """A field of a Stripe object (the SDK's objects are not dicts) or of a dict; None if absent."""
    if obj is None:
        return None
    try:
        return obj[key]
    except KeyError:
        return None


def metadata_value(obj: Any, key: str) -> str:
    return str(value_of(value_of(obj, "metadata"), key) or "")


def payment_result(intent: Any) -> GatewayResult:
    """A PaymentIntent as PGI's result: its status, amount (received, capturable or asked) and, for
    a decline, Stripe's code and message."""
    currency = str(intent["currency"]).upper()
    status = intent["status"]
    fields = {"reference": intent["id"], "currency": currency}
    if status == "succeeded":
        amount = from_minor_units(intent["amount_received"], currency)
        return GatewayResult(GatewayStatus.SUCCEEDED, amount=amount, **fields)
    amount = from_minor_units(intent["amount"], currency)
    if status == "requires_capture":
        capturable = value_of(intent, "amount_capturable") or intent["amount"]
        return GatewayResult(GatewayStatus.AUTHORIZED, amount=from_minor_units(capturable, currency), **fields)
    if status == "canceled":
        return GatewayResult(GatewayStatus.CANCELLED, amount=amount, **fields)
    if status == "requires_action":
        return GatewayResult(
            GatewayStatus.DECLINED,
            amount=amount,
            error_code=ErrorCode.AUTHENTICATION_REQUIRED,
            error_message=AUTHENTICATION_MESSAGE,
            **fields,
        )
    if status in ("requires_payment_method", "requires_confirmation"):
        error = value_of(intent, "last_payment_error")
        if error:
            code, message = decline(error)
            return GatewayResult(
                GatewayStatus.DECLINED, amount=amount, error_code=code, error_message=message, **fields
            )
        return GatewayResult(
            GatewayStatus.DECLINED,
            amount=amount,
            error_code=ErrorCode.GATEWAY_ERROR,
            error_message=f"Stripe holds no payment attempt for this PaymentIntent ({status}).",
            **fields,
        )
    # "processing", and any status newer than this code: the outcome comes later.
    return GatewayResult(GatewayStatus.PENDING, amount=amount, **fields)


def decline(error: Any) -> tuple[ErrorCode, str]:
    """(PGI's code, Stripe's message) of a card error or a PaymentIntent's last_payment_error."""
    stripe_code = value_of(error, "decline_code") or value_of(error, "code") or ""
    message = value_of(error, "message") or "The payment was declined."
    return DECLINE_CODES.get(stripe_code, ErrorCode.DECLINED), message


def refund_result(refund: Any) -> RefundResult:
    currency = str(refund["currency"]).upper()
    status = REFUND_STATUSES.get(refund["status"], RefundStatus.PENDING)
    error_code, error_message = "", ""
    if status is RefundStatus.FAILED:
        reason = value_of(refund, "failure_reason") or refund["status"]
        error_code = REFUND_FAILURES.get(reason, ErrorCode.GATEWAY_ERROR)
        error_message = f"Stripe: refund {refund['status']} ({reason})."
    return RefundResult(
        status=status,
        reference=refund["id"],
        amount=from_minor_units(refund["amount"], currency),
        currency=currency,
        error_code=error_code,
        error_message=error_message,
    )
