"""The payment state machine: which status may follow which. Pure data, no I/O."""

from .models import PaymentStatus as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROCESSING, S.FAILED}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED, S.AUTHORIZED}),
    S.AUTHORIZED: frozenset({S.COMPLETED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

FINAL = frozenset(status for status, following in TRANSITIONS.items() if not following)


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())
