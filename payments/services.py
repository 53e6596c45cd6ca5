"""Payment writes. The only code that creates payments or changes their status."""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from gateways.base import GatewayResult, GatewayStatus, GatewayTimeout, GatewayUnavailable, PaymentRequest
from gateways.registry import connector_for_payment
from pgi.api.errors import BusinessRuleViolation, Conflict, ErrorDetail, PermissionDenied, ValidationFailed
from pgi.merchants.authentication import ApiPrincipal
from pgi.merchants.models import Merchant
from pgi.merchants.selectors import merchant_get_by_code
from pgi.money import currency_exponent, fits_currency, quantize

from .models import Payment, PaymentStatus, PaymentStatusChange
from .signals import payment_status_changed
from .states import can_transition

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


class InvalidTransition(Conflict):
    code = "INVALID_STATE_TRANSITION"


def payment_validate(
    *,
    principal: ApiPrincipal,
    amount: Decimal,
    currency: str,
    from_account: str,
    to_merchant: str | None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
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
    )


def _resolve_merchant(*, principal: ApiPrincipal, to_merchant: str | None) -> Merchant:
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
def payment_create(*, draft: PaymentDraft, principal: ApiPrincipal) -> Payment:
    """Record a new payment as Pending, with the first line of its status history."""
    now = timezone.now()
    payment = Payment.objects.create(
        merchant=draft.merchant,
        api_key=principal.api_key,
        amount=draft.amount,
        currency=draft.currency,
        from_account=draft.from_account,
        reference=draft.reference,
        description=draft.description,
        metadata=draft.metadata,
        status=PaymentStatus.PENDING,
        status_changed_at=now,
    )
    PaymentStatusChange.objects.create(
        payment=payment, from_status="", to_status=PaymentStatus.PENDING, source=Source.API, reason="received"
    )
    transaction.on_commit(
        lambda: payment_status_changed.send(sender=Payment, payment=payment, from_status="", source=Source.API)
    )
    return payment


@transaction.atomic
def payment_transition(
    *,
    payment_id: str,
    to_status: str,
    source: str,
    reason: str = "",
    only_from: frozenset[str] | None = None,
    **changes,
) -> Payment:
    """Move a payment to `to_status`: the one place where a status changes.

    Locks the row, checks the state machine, applies `changes` (gateway, gatewayReference,
    failure code and message), writes the history line and announces the change on commit.
    With `only_from`, a payment whose current status is not in it is returned unchanged (a late
    or repeated gateway answer never moves a payment backwards). Raises InvalidTransition when the
    state machine forbids the move.
    """
    # The merchant comes along for the response; `of=("self",)` locks the payment row alone.
    payment = Payment.objects.select_related("merchant").select_for_update(of=("self",)).get(pk=payment_id)
    from_status = payment.status
    if only_from is not None and from_status not in only_from:
        logger.info("payment %s is %s; %s from %s ignored", payment_id, from_status, to_status, source)
        return payment
    if not can_transition(from_status, to_status):
        raise InvalidTransition(f"A {from_status} payment cannot become {to_status}.")

    for name, value in changes.items():
        setattr(payment, name, value)
    payment.status = to_status
    payment.status_changed_at = timezone.now()
    payment.save(update_fields=["status", "status_changed_at", "updated_at", *changes])
    PaymentStatusChange.objects.create(
        payment=payment,
        from_status=from_status,
        to_status=to_status,
        source=source,
        reason=reason[:255],
        failure_code=changes.get("failure_code", ""),
    )
    transaction.on_commit(
        lambda: payment_status_changed.send(sender=Payment, payment=payment, from_status=from_status, source=source)
    )
    return payment


def payment_process(*, draft: PaymentDraft, principal: ApiPrincipal) -> Payment:
    """Create the payment and take it through the gateway.

    Two short transactions around one gateway call that runs in none: first the payment is
    created Pending and moved to Processing (committed before the call, so a crash during it
    leaves a visible trace), then the outcome is applied. A timeout leaves the payment
    Processing: the gateway may have charged, so only the gateway's own answer (webhook or
    status query) may settle it.
    """
    connector = connector_for_payment(merchant_code=draft.merchant.code, currency=draft.currency)
    with transaction.atomic():  # one commit for both steps; each keeps its history line
        payment = payment_create(draft=draft, principal=principal)
        payment = payment_transition(
            payment_id=payment.id,
            to_status=PaymentStatus.PROCESSING,
            source=Source.SYSTEM,
            reason=f"sent to {connector.code}",
            gateway=connector.code,
        )
    request = PaymentRequest(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        from_account=payment.from_account,
        merchant_code=draft.merchant.code,
        description=payment.description,
    )
    try:
        result = connector.authorize(request)
    except GatewayTimeout as exc:
        logger.warning("gateway %s timed out on %s: %s", connector.code, payment.id, exc)
        return _note_unknown_outcome(payment, f"{connector.code} timed out; outcome unknown")
    except GatewayUnavailable as exc:
        # Nothing happened at the gateway, so failing the payment cannot lose money.
        return payment_transition(
            payment_id=payment.id,
            to_status=PaymentStatus.FAILED,
            source=Source.GATEWAY,
            reason=str(exc),
            only_from=frozenset({PaymentStatus.PROCESSING}),
            failure_code="GATEWAY_UNAVAILABLE",
            failure_message="The payment gateway is unavailable; nothing was charged. Try again later.",
        )
    return payment_apply_gateway_result(payment_id=payment.id, result=result, source=Source.GATEWAY)


def _note_unknown_outcome(payment: Payment, reason: str) -> Payment:
    PaymentStatusChange.objects.create(
        payment=payment, from_status=payment.status, to_status=payment.status, source=Source.GATEWAY, reason=reason
    )
    return payment


def payment_apply_gateway_result(*, payment_id: str, result: GatewayResult, source: str) -> Payment:
    """Apply what a gateway said about a payment (its answer, a webhook, a status query).

    Only a Processing payment moves; a final one is returned as it is, so duplicates and late
    or out-of-order notifications change nothing.
    """
    only_from = frozenset({PaymentStatus.PROCESSING})
    gateway_reference = {"gateway_reference": result.reference} if result.reference else {}
    if result.status is GatewayStatus.SUCCEEDED:
        return payment_transition(
            payment_id=payment_id,
            to_status=PaymentStatus.COMPLETED,
            source=source,
            reason="charged",
            only_from=only_from,
            **gateway_reference,
        )
    if result.status is GatewayStatus.DECLINED:
        return payment_transition(
            payment_id=payment_id,
            to_status=PaymentStatus.FAILED,
            source=source,
            reason="declined",
            only_from=only_from,
            failure_code=result.error_code or "DECLINED",
            failure_message=result.error_message or "The payment was declined.",
            **gateway_reference,
        )
    # Pending at the gateway: remember its reference; the outcome arrives later.
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status == PaymentStatus.PROCESSING and result.reference and not payment.gateway_reference:
            payment.gateway_reference = result.reference
            payment.save(update_fields=["gateway_reference", "updated_at"])
        return payment
