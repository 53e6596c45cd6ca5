"""Payment writes without a gateway: validate, create, and the one function that changes a status."""

import copy
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from pgi.compiled import CompiledSelect, insert_rows, update_row, writes_together
from pgi.errors import BusinessRuleViolation, Conflict, ErrorDetail, PermissionDenied, ValidationFailed
from pgi.merchants.models import Merchant
from pgi.merchants.principals import Principal
from pgi.merchants.selectors import merchant_get_by_code
from pgi.money import currency_exponent, fits_currency, quantize
from pgi.text import clip

from ..models import Payment, PaymentStatus, PaymentStatusChange
from .operations import operations_end
from ..signals import payment_status_changed
from ..states import can_transition

logger = logging.getLogger(__name__)

Source = PaymentStatusChange.Source


@dataclass(frozen=True)
class PaymentDraft:
    """A payment request that passed every check: what POST would create."""

    merchant: Merchant
    amount: Decimal
    currency: str
    from_account: str
    reference: str = ""
    description: str = ""
    metadata: dict = field(default_factory=dict)
    capture: bool = True


class InvalidTransition(Conflict):
    code = "INVALID_STATE_TRANSITION"


def payment_validate(
    *,
    principal: Principal,
    amount: Decimal,
    currency: str,
    from_account: str,
    to_merchant: str | None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
    capture: bool = True,
) -> PaymentDraft:
    """Every business check of a payment, with no write. The input's shape is already valid.

    Raises PermissionDenied (a merchant key naming another merchant), BusinessRuleViolation
    (unknown or inactive merchant, currency not enabled, amount over the limit) and
    ValidationFailed (more decimals than the currency has).
    """
    merchant = _resolve_merchant(principal=principal, to_merchant=to_merchant)

    exponent = currency_exponent(currency)
    if not fits_currency(amount, currency):
        raise ValidationFailed(
            "The amount has more decimals than the currency allows.",
            details=[ErrorDetail("amount", f"{currency} allows at most {exponent} decimal places.")],
        )

    enabled = {mc.currency: mc for mc in merchant.currencies.all()}
    if currency not in enabled:
        raise BusinessRuleViolation(
            f"Merchant {merchant.code} does not accept {currency}.",
            code="CURRENCY_NOT_ENABLED",
            details=[ErrorDetail("currency", f"Enabled: {', '.join(sorted(enabled)) or 'none'}.")],
        )
    limit = enabled[currency].max_amount
    if limit is not None and amount > limit:
        raise BusinessRuleViolation(
            "The amount is over the merchant's limit for one payment.",
            code="AMOUNT_OVER_LIMIT",
            details=[ErrorDetail("amount", f"At most {quantize(limit, currency)} {currency}.")],
        )
    return PaymentDraft(
        merchant=merchant,
        amount=quantize(amount, currency),
        currency=currency,
        from_account=from_account,
        reference=reference,
        description=description,
        metadata=metadata or {},
        capture=capture,
    )


def _resolve_merchant(*, principal: Principal, to_merchant: str | None) -> Merchant:
    if not principal.is_platform:
        own = principal.merchant
        if to_merchant not in (None, own.code):
            raise PermissionDenied(
                "This API key may only take payments for its own merchant.",
                code="MERCHANT_NOT_ALLOWED",
                details=[ErrorDetail("toMerchant", f"Must be {own.code} or omitted.")],
            )
        return own
    if not to_merchant:
        raise ValidationFailed(
            "A platform key must name the merchant.",
            details=[ErrorDetail("toMerchant", "This field is required for platform keys.")],
        )
    merchant = merchant_get_by_code(code=to_merchant)
    if merchant is None:
        raise BusinessRuleViolation(
            f"No merchant {to_merchant}.", code="UNKNOWN_MERCHANT", details=[ErrorDetail("toMerchant", "Unknown merchant.")]
        )
    if not merchant.is_active:
        raise BusinessRuleViolation(
            f"Merchant {to_merchant} is not active.",
            code="MERCHANT_INACTIVE",
            details=[ErrorDetail("toMerchant", "The merchant is not active.")],
        )
    return merchant


@transaction.atomic
def payment_create(*, draft: PaymentDraft, principal: Principal) -> Payment:
    """Record a new payment as Pending, with the first line of its status history."""
    payment = _payment_new(draft=draft, principal=principal, status=PaymentStatus.PENDING)
    insert_rows([payment])
    PaymentStatusChange.objects.create(payment=payment, **RECEIVED)
    # Inside the transaction: what a receiver writes (the events outbox) commits with the payment or not at all.
    payment_status_changed.send(sender=Payment, payment=payment, from_status="", source=Source.API)
    return payment


RECEIVED = {"from_status": "", "to_status": PaymentStatus.PENDING, "source": Source.API, "reason": "received"}


def _payment_new(*, draft: PaymentDraft, principal: Principal, status: str, gateway: str = "") -> Payment:
    return Payment(
        merchant=draft.merchant,
        api_key=principal.api_key,
        amount=draft.amount,
        currency=draft.currency,
        from_account=draft.from_account,
        reference=draft.reference,
        description=draft.description,
        metadata=draft.metadata,
        capture=draft.capture,
        status=status,
        status_changed_at=timezone.now(),
        gateway=gateway,
    )


def payment_create_processing(*, draft: PaymentDraft, principal: Principal, gateway: str, reason: str) -> Payment:
    """payment_create, then payment_transition to Processing (sent to `gateway`), written as one
    INSERT of the row as Processing: the same two history lines and the same two announcements
    (Pending, then Processing) as the two steps, without the UPDATE and the reads between them.
    For payment_process, inside its transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("payment_create_processing runs inside the caller's transaction")
    payment = _payment_new(draft=draft, principal=principal, status=PaymentStatus.PROCESSING, gateway=gateway)
    insert_rows([payment])
    received = copy.copy(payment)  # the payment as payment_create left it, for the first announcement
    received.status, received.gateway = PaymentStatus.PENDING, ""
    insert_rows(
        [
            PaymentStatusChange(payment=payment, **RECEIVED),
            PaymentStatusChange(
                payment=payment,
                from_status=PaymentStatus.PENDING,
                to_status=PaymentStatus.PROCESSING,
                source=Source.SYSTEM,
                reason=clip(reason, 255),
            ),
        ]
    )
    payment_status_changed.send(sender=Payment, payment=received, from_status="", source=Source.API)
    payment_status_changed.send(sender=Payment, payment=payment, from_status=PaymentStatus.PENDING, source=Source.SYSTEM)
    return payment


# Built and compiled once per process (pgi.compiled): every change to a payment starts here.
_LOCKED = CompiledSelect(
    lambda payment_id: Payment.objects.select_related("merchant").select_for_update(of=("self",)).filter(pk=payment_id).order_by(),
    marks=("pgi-compiled-payment-lock-mark",),
)


def payment_lock(payment_id: str) -> Payment:
    """The payment under its row lock, for the rest of the caller's transaction. Every change to a
    payment and to its gateway operations is made under this lock. The merchant comes along for
    the response; `of=("self",)` locks the payment row alone. Payment.DoesNotExist when none."""
    found = _LOCKED.rows(payment_id, using=Payment.objects.db)
    if not found:
        raise Payment.DoesNotExist(f"No payment {payment_id}.")
    return found[0]


@transaction.atomic
def payment_transition(
    *,
    payment_id: str,
    to_status: str,
    source: str,
    reason: str = "",
    only_from: frozenset[str] | None = None,
    answered: bool = False,
    finish: dict[str, str] | None = None,
    **changes,
) -> Payment:
    """Move a payment to `to_status`: the one place where a status changes.

    Locks the row, checks the state machine, applies `changes` (gateway, gatewayReference,
    failure code and message), ends the operations the move settles, writes the history line and
    announces the change inside the same transaction. With `only_from`, a payment whose current
    status is not in it is returned unchanged (a late or repeated gateway answer never moves a
    payment backwards). Raises InvalidTransition when the state machine forbids the move.
    `answered` (a gateway's answer moves it) ends a staff flag that only said no final answer had
    come; a flag for a contradiction stays until staff clear it. `finish` as for transition_locked.
    """
    payment = payment_lock(payment_id)
    return transition_locked(
        payment,
        to_status=to_status,
        source=source,
        reason=reason,
        only_from=only_from,
        answered=answered,
        finish=finish,
        **changes,
    )


def transition_locked(
    payment: Payment,
    *,
    to_status: str,
    source: str,
    reason: str = "",
    only_from: frozenset[str] | None = None,
    answered: bool = False,
    finish: dict[str, str] | None = None,
    **changes,
) -> Payment:
    """payment_transition on a payment the caller holds under payment_lock.

    The operations in flight that held the payment in its old status end with the move: by
    default an authorization succeeds when the payment is Authorized or Completed and fails
    otherwise, a capture succeeds when it is Completed, a void when it is Cancelled, and each fails
    otherwise. `finish` ({kind: status}) says otherwise (say, `not_sent` when no gateway could be
    reached). Refunds run beside the payment's status and are never ended here."""
    from_status = payment.status
    if only_from is not None and from_status not in only_from:
        logger.info("payment %s is %s; %s from %s ignored", payment.id, from_status, to_status, source)
        return payment
    if not can_transition(from_status, to_status):
        raise InvalidTransition(f"A {from_status} payment cannot become {to_status}.")

    changes = _with_answered_flag_cleared(payment, changes) if answered else changes
    for name, value in changes.items():
        setattr(payment, name, value)
    payment.status = to_status
    payment.status_changed_at = timezone.now()
    # The payment, the operations it ends, its history line and announcements: one statement.
    with writes_together(savepoint=False):
        update_row(payment, ["status", "status_changed_at", "updated_at", *changes, *unsaved_take(payment)])
        operations_end(payment=payment, to_status=to_status, finish=finish or {})
        insert_rows(
            [
                PaymentStatusChange(
                    payment=payment,
                    from_status=from_status,
                    to_status=to_status,
                    source=source,
                    reason=clip(reason, 255),
                    failure_code=changes.get("failure_code", ""),
                )
            ]
        )
        payment_status_changed.send(sender=Payment, payment=payment, from_status=from_status, source=source)
    return payment


@transaction.atomic
def payment_note(
    *, payment_id: str, source: str, reason: str, only_if: dict | None = None, answered: bool = False, **changes
) -> Payment | None:
    """Write a history line that changes no status, optionally with field changes, under the row lock.

    The line repeats the current status in both columns, so the history still reads as a sequence.
    With `only_if` ({field: value}), nothing is written unless the locked row matches, and None is
    returned. `answered` as for payment_transition.
    """
    payment = payment_lock(payment_id)
    if only_if and any(getattr(payment, name) != value for name, value in only_if.items()):
        return None
    return note_locked(payment, source=source, reason=reason, answered=answered, **changes)


def note_locked(payment: Payment, *, source: str, reason: str, answered: bool = False, **changes) -> Payment:
    """payment_note on a payment the caller holds under payment_lock."""
    changes = _with_answered_flag_cleared(payment, changes) if answered else changes
    unsaved = unsaved_take(payment)
    if changes or unsaved:
        for name, value in changes.items():
            setattr(payment, name, value)
        update_row(payment, ["updated_at", *changes, *unsaved])
    PaymentStatusChange.objects.create(
        payment=payment,
        from_status=payment.status,
        to_status=payment.status,
        source=source,
        reason=clip(reason, 255),
        failure_code=changes.get("failure_code", ""),
    )
    return payment


ANSWERED_FLAG_CLEARED = {"needs_attention": False, "attention_reason": "", "attention_code": ""}


def _with_answered_flag_cleared(locked: Payment, changes: dict) -> dict:
    """`changes`, plus the end of the payment's staff flag if an answer is all it waited for.
    Decided on the locked row: a contradiction flagged a moment ago is never cleared by a race."""
    return {**changes, **ANSWERED_FLAG_CLEARED} if locked.flag_clears_on_answer else changes


def unsaved_keep(payment: Payment, name: str) -> None:
    """Mark a field set on a locked payment to be written by its next save in this transaction (one
    UPDATE instead of two); unsaved_take and the caller's last unsaved_save write it otherwise."""
    payment.__dict__.setdefault("_unsaved_fields", set()).add(name)


def unsaved_take(payment: Payment) -> set[str]:
    return payment.__dict__.pop("_unsaved_fields", set())


def unsaved_save(payment: Payment) -> None:
    unsaved = unsaved_take(payment)
    if unsaved:
        update_row(payment, ["updated_at", *unsaved])
