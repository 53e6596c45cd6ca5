"""payments.representation writes a payment exactly as PaymentOutputSerializer's fields would."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from payments.apis import PaymentOutputSerializer
from payments.models import Payment, PaymentStatus
from payments.selectors import payment_get, payment_list
from pgi.merchants.models import Merchant
from tests.factories import PaymentFactory

CURRENCIES = {"USD": 2, "JPY": 0, "KWD": 3, "EUR": 2}
texts = st.text(max_size=12)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(
        [dt_timezone.utc, ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")]
    )
)


def fields_would_write(payment, *, mask_accounts=False):
    """DRF's own Serializer.to_representation over PaymentOutputSerializer's declared fields."""
    serializer = PaymentOutputSerializer(payment, context={"mask_accounts": mask_accounts})
    return serializers.ModelSerializer.to_representation(serializer, payment)


@st.composite
def payments(draw):
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    digits = CURRENCIES[currency]
    amount = Decimal(draw(st.integers(1, 10**12))).scaleb(-draw(st.integers(0, digits)))
    captured = draw(st.one_of(st.none(), st.just(amount)))
    payment = Payment(
        id="pay_" + draw(st.from_regex(r"[0-9a-z]{26}", fullmatch=True)),
        merchant=Merchant(code=draw(st.from_regex(r"[a-z][a-z0-9]{2,10}", fullmatch=True))),
        amount=amount,
        currency=currency,
        from_account=draw(st.sampled_from(["account123", "DE89370400440532013000", "ab", "shop:7:1234"])),
        reference=draw(texts),
        description=draw(texts),
        metadata=draw(st.dictionaries(texts, texts, max_size=3)),
        status=draw(st.sampled_from(PaymentStatus)),
        status_changed_at=draw(moments),
        gateway=draw(st.sampled_from(["", "simulator", "stripe"])),
        gateway_reference=draw(texts),
        failure_code=draw(st.sampled_from(["", "INSUFFICIENT_FUNDS"])),
        failure_message=draw(texts),
        refunded_amount=Decimal(0) if captured is None else draw(st.sampled_from([Decimal(0), amount])),
        capture=draw(st.booleans()),
        captured_amount=captured,
        authorization_expires_at=draw(st.one_of(st.none(), moments)),
        created_at=draw(moments),
        updated_at=draw(moments),
    )
    # As the queries annotate it (an unsaved payment has no operations to look at).
    payment.pending_operation_kind = draw(st.sampled_from([None, "", "capture", "void"]))
    if draw(st.booleans()):
        payment.settlement_id = draw(st.sampled_from([None, "stl_01hzz"]))
    return payment


@given(payments(), st.booleans())
def test_every_field_is_written_as_its_declaration_writes_it(payment, mask_accounts):
    written = PaymentOutputSerializer(payment, context={"mask_accounts": mask_accounts}).data

    expected = fields_would_write(payment, mask_accounts=mask_accounts)
    assert written == expected
    assert list(written) == list(expected)  # the same order
    for name, value in expected.items():  # the same types: Decimal stays Decimal, text stays text
        assert type(written[name]) is type(value), name


def test_a_naive_datetime_is_written_as_the_field_writes_it():
    payment = Payment(
        id="pay_x", merchant=Merchant(code="m1"), amount=Decimal("1.00"), currency="USD", from_account="account123",
        status=PaymentStatus.COMPLETED, status_changed_at=datetime(2026, 1, 2, 3, 4, 5), created_at=datetime(2026, 1, 2),
        updated_at=datetime(2026, 1, 2) + timedelta(microseconds=7),
    )
    payment.pending_operation_kind = None

    assert PaymentOutputSerializer(payment).data == fields_would_write(payment)


@pytest.mark.django_db
def test_payments_read_from_the_database_are_written_as_the_fields_write_them(merchant, principal):
    PaymentFactory(merchant=merchant, currency="KWD", amount=Decimal("1.5"), metadata={"order": "7"})
    PaymentFactory(merchant=merchant, authorized=True, reference="r-1")
    PaymentFactory(merchant=merchant, processing=True, currency="JPY", amount=Decimal("500"))

    listed = list(payment_list(principal=principal))
    assert len(listed) == 3
    for payment in listed:
        one = payment_get(principal=principal, payment_id=payment.pk)
        for mask_accounts in (False, True):
            assert PaymentOutputSerializer(payment, context={"mask_accounts": mask_accounts}).data == (
                fields_would_write(payment, mask_accounts=mask_accounts)
            )
            assert PaymentOutputSerializer(one).data == fields_would_write(one)
