"""Users of the finance UI and the rows its pages show."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from settlements.finance.models import FINANCE_GROUP
from settlements.models import SettlementBatch
from settlements.services import settlement_run
from tests.factories import (
    MerchantFactory,
    PaymentFactory,
    captured_payment,
    completed_refund,
)

PASSWORD = "correct-horse-battery"
CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


@pytest.fixture
def finance_user(django_user_model):
    user = django_user_model.objects.create_user("fiona", "fiona@bank.example", PASSWORD)
    user.groups.add(Group.objects.get(name=FINANCE_GROUP))
    return user


@pytest.fixture
def finance(client, finance_user) -> Client:
    client.force_login(finance_user)
    return client


def payment_on(day: dt.date, **kwargs) -> Payment:
    """A payment created at noon UTC of `day` (created_at is set by the database on insert)."""
    payment = PaymentFactory(**kwargs)
    at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    Payment.objects.filter(pk=payment.pk).update(created_at=at)
    return payment


@pytest.fixture
def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


@pytest.fixture
def month_of_payments(today):
    """Two gateways, three currencies, over today and two past days of the 30-day window, and one
    payment just outside it."""
    shop = MerchantFactory(code="shop-a")
    yesterday, last_week, long_ago = (today - dt.timedelta(days=n) for n in (1, 7, 30))
    rows = [
        (today, "simulator", "USD", "10.00", PaymentStatus.COMPLETED),
        (today, "simulator", "USD", "0.10", PaymentStatus.COMPLETED),
        (today, "simulator", "USD", "0.20", PaymentStatus.REFUNDED),
        (today, "simulator", "USD", "5.00", PaymentStatus.FAILED),
        (today, "simulator", "USD", "7.00", PaymentStatus.PROCESSING),
        (today, "stripe", "EUR", "19.90", PaymentStatus.AUTHORIZED),
        (yesterday, "simulator", "USD", "1.00", PaymentStatus.COMPLETED),
        (yesterday, "stripe", "KWD", "1.500", PaymentStatus.COMPLETED),
        (yesterday, "stripe", "KWD", "2.250", PaymentStatus.FAILED),
        (last_week, "stripe", "EUR", "100.00", PaymentStatus.PARTIALLY_REFUNDED),
        (long_ago, "stripe", "EUR", "999.00", PaymentStatus.COMPLETED),
    ]
    for day, gateway, currency, amount, status in rows:
        payment_on(day, merchant=shop, gateway=gateway, currency=currency, amount=Decimal(amount), status=status)
    return rows


@pytest.fixture
def batch():
    """A settled EUR batch of shop-a: two payments, a refund, with its payout files."""
    merchant = MerchantFactory(code="shop-a", name="Shop A", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
    first = captured_payment(merchant=merchant, amount="80.00", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=2))
    captured_payment(merchant=merchant, amount="0.30", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=1))
    completed_refund(payment=first, amount="1.00", completed_at=CUTOFF - dt.timedelta(minutes=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    return SettlementBatch.objects.get(pk=outcome.batch_id)
