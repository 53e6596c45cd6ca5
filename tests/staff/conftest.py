"""Staff of each role (pgi/staff/roles.py), signed in, and the rows their pages show: a merchant with
a settlement IBAN, a flagged payment from an IBAN, a settled batch with its payout files, an API key."""

import datetime as dt
import itertools

import pytest
from django.test import Client
from django.utils import timezone

from payments.models import Payment
from pgi.merchants.services import api_key_create
from pgi.staff.roles import ROLES
from pgi.staff.services import user_roles_set
from settlements.models import SettlementBatch
from settlements.services import settlement_run
from tests.factories import (
    MerchantFactory,
    PaymentFactory,
    captured_payment,
    completed_refund,
)

PASSWORD = "correct-horse-battery"
MERCHANT_IBAN = "DE89370400440532013000"
PAYER_IBAN = "GB29NWBK60161331926819"
CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
NO_ROLE = "no role"


def staff_user(django_user_model, username: str, role: str | None):
    """A personal staff account holding `role` (None: admin access and no role at all)."""
    user = django_user_model.objects.create_user(username, f"{username}@bank.example", PASSWORD, is_staff=True)
    if role is not None:
        user_roles_set(username=username, grant=[ROLES[role]], revoke=[])
    return user


@pytest.fixture
def signed_in(django_user_model):
    """signed_in("Support") -> a Client signed in as a new member of Support; NO_ROLE: none."""

    numbers = itertools.count(1)

    def sign_in(role: str) -> Client:
        client = Client()
        name = f"{role.lower().replace(' ', '-')}-{next(numbers)}"
        client.force_login(staff_user(django_user_model, name, None if role == NO_ROLE else role))
        return client

    return sign_in


class World:
    merchant = None
    payment: Payment = None
    batch: SettlementBatch = None
    api_key = None


@pytest.fixture
def world() -> World:
    w = World()
    w.merchant = MerchantFactory(code="shop-a", settlement_iban=MERCHANT_IBAN, settlement_bic="COBADEFFXXX")
    w.payment = PaymentFactory(merchant=w.merchant, from_account=PAYER_IBAN, flagged=True, reference="order-7")
    first = captured_payment(merchant=w.merchant, amount="80.00", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=2))
    completed_refund(payment=first, amount="1.00", completed_at=CUTOFF - dt.timedelta(minutes=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    w.batch = SettlementBatch.objects.get(pk=outcome.batch_id)
    w.api_key, _ = api_key_create(name="shop-a live", merchant=w.merchant)
    return w
