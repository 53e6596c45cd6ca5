from decimal import Decimal

import factory
from django.utils import timezone

from payments.models import Payment, PaymentStatus
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
    """A payment row as the services would leave it; for read tests, not for status changes."""

    class Meta:
        model = Payment

    merchant = factory.SubFactory(MerchantFactory)
    amount = Decimal("10.00")
    currency = "USD"
    from_account = "account123"
    status = PaymentStatus.COMPLETED
    status_changed_at = factory.LazyFunction(timezone.now)
    gateway = "simulator"
