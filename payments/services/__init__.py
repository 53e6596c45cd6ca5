"""Payment writes: the only code that creates payments or changes their status.

- core: validate, create, and payment_transition, the one function that changes a status
- gateway: routing with failover, gateway calls recorded as attempts, answers applied
- capture: capture and cancel of authorized payments, and their expiry
- recovery: settling payments whose outcome is unknown by asking their gateway
"""

from .capture import OperationDeclined, OperationRefused, authorizations_expire, payment_cancel, payment_capture
from .core import InvalidTransition, PaymentDraft, payment_create, payment_note, payment_transition, payment_validate
from .gateway import gateway_call, payment_apply_gateway_result, payment_process, reference_mismatch
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
