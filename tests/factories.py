from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from payments.models import (
    AttentionCode,
    GatewayOperation,
    OperationKind,
    OperationStatus,
    Payment,
    PaymentStatus,
    PaymentStatusChange,
)
from pgi.merchants.models import Merchant, MerchantCurrency


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant
        django_get_or_create = ("code",)
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"merchant{n:03d}")
    name = factory.Faker("company")

    @factory.post_generation
    def currencies(self, create, extracted, **kwargs):
        if not create:
            return
        for code in extracted if extracted is not None else ("USD", "EUR", "JPY", "KWD"):
            MerchantCurrency.objects.get_or_create(merchant=self, currency=code)


class PaymentFactory(factory.django.DjangoModelFactory):
    """A payment row as the services would leave it; for read tests, not for status changes.

    Traits: `authorized` (capture=False, held at the gateway), `processing` (its outcome unknown,
    first recovery look ahead), `due` (processing and past its recovery look), `flagged` (recovery
    gave up: staff must look).
    """

    class Meta:
        model = Payment

    class Params:
        authorized = factory.Trait(status=PaymentStatus.AUTHORIZED, capture=False)
        processing = factory.Trait(
            status=PaymentStatus.PROCESSING,
            next_recovery_at=factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=1)),
        )
        due = factory.Trait(
            processing=True,
            next_recovery_at=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=5)),
        )
        flagged = factory.Trait(
            needs_attention=True,
            attention_code=AttentionCode.NO_FINAL_ANSWER,
            attention_reason="no final answer after 12 looks",
        )

    merchant = factory.SubFactory(MerchantFactory)
    amount = Decimal("10.00")
    currency = "USD"
    from_account = "account123"
    status = PaymentStatus.COMPLETED
    status_changed_at = factory.LazyFunction(timezone.now)
    gateway = "simulator"
    # Of its authorization (a GatewayOperation, made with the payment as the services would).
    next_recovery_at = None
    recovery_attempts = 0

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        look_at, attempts = kwargs.pop("next_recovery_at"), kwargs.pop("recovery_attempts")
        payment = super()._create(model_class, *args, **kwargs)
        if payment.status != PaymentStatus.PENDING:
            processing = payment.status == PaymentStatus.PROCESSING
            GatewayOperation.objects.create(
                payment=payment,
                kind=OperationKind.AUTHORIZE,
                amount=payment.amount,
                idempotency_key=payment.id,
                status=OperationStatus.PENDING
                if processing
                else OperationStatus.FAILED
                if payment.status == PaymentStatus.FAILED
                else OperationStatus.SUCCEEDED,
                attempts=attempts,
                next_look_at=look_at if processing and not payment.needs_attention else None,
            )
        return payment


def make_due(payment_id: str) -> None:
    """Bring a payment made through the services to its recovery look now (PaymentFactory(due=True)
    makes such a row directly)."""
    GatewayOperation.objects.filter(payment_id=payment_id, status=OperationStatus.PENDING).update(
        next_look_at=timezone.now() - timedelta(seconds=1), lease_expires_at=None
    )


def put_in_flight(payment_id: str, kind: str, amount=None, key: str = "", look_at=None, by_expiry: bool = False):
    """A capture or void sent for a payment and not answered yet, as a claim leaves it."""
    payment = Payment.objects.get(pk=payment_id)
    return GatewayOperation.objects.create(
        payment=payment,
        kind=kind,
        amount=amount if amount is not None else payment.amount,
        idempotency_key=key or f"{payment_id}-{kind}",
        by_expiry=by_expiry,
        next_look_at=look_at,
    )


def captured_payment(*, merchant, amount, currency="USD", captured_at=None, captured_amount=None, **kwargs) -> Payment:
    """A Completed payment with the status history line settlement reads its capture time from."""
    captured_at = captured_at or timezone.now()
    payment = PaymentFactory(
        merchant=merchant, amount=Decimal(amount), currency=currency, captured_amount=captured_amount,
        status_changed_at=captured_at, **kwargs,
    )
    change = PaymentStatusChange.objects.create(
        payment=payment, from_status=PaymentStatus.PROCESSING, to_status=PaymentStatus.COMPLETED, source="gateway"
    )
    PaymentStatusChange.objects.filter(pk=change.pk).update(created_at=captured_at)
    return payment


def completed_refund(*, payment: Payment, amount, completed_at=None):
    """A Completed refund of `payment` (its gateway operation succeeded), as the refund job leaves it."""
    from refunds.models import Refund, RefundStatus

    completed_at = completed_at or timezone.now()
    operation = GatewayOperation.objects.create(
        payment=payment, kind=OperationKind.REFUND, amount=Decimal(amount),
        idempotency_key=f"ref-{payment.pk}-{GatewayOperation.objects.count()}", status=OperationStatus.SUCCEEDED,
    )
    refund = Refund.objects.create(
        payment=payment, merchant=payment.merchant, operation=operation, amount=Decimal(amount),
        currency=payment.currency, status=RefundStatus.COMPLETED, status_changed_at=completed_at, gateway=payment.gateway,
    )
    Payment.objects.filter(pk=payment.pk).update(
        refunded_amount=payment.refunded_amount + Decimal(amount), status=PaymentStatus.PARTIALLY_REFUNDED
    )
    payment.refresh_from_db()
    return refund
