"""Stripe's decline, card error and refund failure codes onto PGI's ErrorCode."""

from ..base import ErrorCode, RefundStatus

# Stripe's decline codes (docs.stripe.com/declines/codes) and card error codes onto PGI's. Anything
# not listed is a plain DECLINED; Stripe's own code and message stay in the result's message.
DECLINE_CODES: dict[str, ErrorCode] = {
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "expired_card": ErrorCode.CARD_EXPIRED,
    "fraudulent": ErrorCode.FRAUD_SUSPECTED,
    "stolen_card": ErrorCode.FRAUD_SUSPECTED,
    "lost_card": ErrorCode.FRAUD_SUSPECTED,
    "pickup_card": ErrorCode.FRAUD_SUSPECTED,
    "merchant_blacklist": ErrorCode.FRAUD_SUSPECTED,
    "security_violation": ErrorCode.FRAUD_SUSPECTED,
    "incorrect_number": ErrorCode.INVALID_ACCOUNT,
    "invalid_number": ErrorCode.INVALID_ACCOUNT,
    "invalid_account": ErrorCode.INVALID_ACCOUNT,
    "incorrect_cvc": ErrorCode.INVALID_ACCOUNT,
    "invalid_cvc": ErrorCode.INVALID_ACCOUNT,
    "invalid_expiry_month": ErrorCode.INVALID_ACCOUNT,
    "invalid_expiry_year": ErrorCode.INVALID_ACCOUNT,
    "authentication_required": ErrorCode.AUTHENTICATION_REQUIRED,
    "card_velocity_exceeded": ErrorCode.LIMIT_EXCEEDED,
    "withdrawal_count_limit_exceeded": ErrorCode.LIMIT_EXCEEDED,
    "processing_error": ErrorCode.GATEWAY_ERROR,
    "issuer_not_available": ErrorCode.GATEWAY_ERROR,
    "try_again_later": ErrorCode.GATEWAY_ERROR,
    "reenter_transaction": ErrorCode.GATEWAY_ERROR,
}
# A refund's failure_reason (docs.stripe.com/api/refunds/object#refund_object-failure_reason).
REFUND_FAILURES: dict[str, ErrorCode] = {
    "expired_or_canceled_card": ErrorCode.CARD_EXPIRED,
    "lost_or_stolen_card": ErrorCode.INVALID_ACCOUNT,
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "declined": ErrorCode.DECLINED,
}
REFUND_STATUSES = {
    "succeeded": RefundStatus.SUCCEEDED,
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}
AUTHENTICATION_MESSAGE = "The payment needs the shopper's authentication (3-D Secure), which PGI cannot complete."
