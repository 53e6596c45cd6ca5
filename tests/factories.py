from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from payments.models import AttentionCode, Payment, PaymentStatus
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


def make_due(payment_id: str) -> None:
    """Bring a payment made through the services to its recovery look now (PaymentFactory(due=True)
    makes such a row directly)."""
    Payment.objects.filter(pk=payment_id).update(next_recovery_at=timezone.now() - timedelta(seconds=1))
