"""Payment writes: the only code that creates payments or changes their status.

- core: validate, create, the row lock, and payment_transition, the one function that changes a status
- operations: the gateway operations (authorize, capture, void, refund) as rows, under that lock
- calls: every gateway call recorded as an attempt and told to the breaker
- authorize: taking a payment, with routing and failover
- answers: what a gateway said, applied to the payment under one lock, per operation
- capture: capture and cancel of authorized payments, and their expiry
- recovery: settling operations whose outcome is unknown by asking their gateway
"""

from .capture import OperationDeclined, OperationRefused, authorizations_expire, payment_cancel, payment_capture
from .core import InvalidTransition, PaymentDraft, payment_create, payment_note, payment_transition, payment_validate
from .answers import payment_apply_gateway_result, reference_mismatch
from .authorize import payment_process
from .calls import gateway_call
from .recovery import payment_recover, payment_recovery_restart, payments_recover

__all__ = [
    "InvalidTransition",
    "OperationDeclined",
    "OperationRefused",
    "PaymentDraft",
    "authorizations_expire",
    "gateway_call",
    "payment_apply_gateway_result",
    "payment_cancel",
    "payment_capture",
    "payment_create",
    "payment_note",
    "payment_process",
    "payment_recover",
    "payment_recovery_restart",
    "payment_transition",
    "payment_validate",
    "payments_recover",
    "reference_mismatch",
]
