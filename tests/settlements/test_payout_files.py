"""Payout files: a CSV and a pain.001.001.09 credit transfer that validates against the ISO 20022 XSD,
built again byte for byte."""

import csv
import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from lxml import etree

from pgi.errors import BusinessRuleViolation
from settlements.models import BatchStatus, PayoutFileKind, SettlementBatch
from settlements.payout_files import (
    NAMESPACE,
    InvalidPayoutFile,
    pain_schema,
    pain_validate,
)
from settlements.services import payout_files_generate, settlement_run
from tests.factories import MerchantFactory, captured_payment, completed_refund

CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
BEFORE = CUTOFF - dt.timedelta(hours=1)
NS = {"p": NAMESPACE}


def settled(currency="EUR", amount="1234.56", iban="DE89370400440532013000", bic="COBADEFFXXX"):
    merchant = MerchantFactory(code="shop-x", name="Café Ünïcode & Co", settlement_iban=iban, settlement_bic=bic)
    payment = captured_payment(merchant=merchant, amount=amount, currency=currency, captured_at=BEFORE)
    completed_refund(payment=payment, amount="0.56" if currency != "JPY" else "56", completed_at=BEFORE)
    [outcome] = settlement_run(cutoff=CUTOFF)
    return SettlementBatch.objects.get(pk=outcome.batch_id)


def file_of(batch, kind) -> bytes:
    return bytes(batch.payout_files.get(kind=kind).content)


@pytest.mark.django_db
@pytest.mark.parametrize("currency, amount, net", [("EUR", "1234.56", "1234.00"), ("JPY", "5000", "4944"), ("USD", "10.00", "9.44")])
def test_the_pain001_file_validates_against_its_xsd(currency, amount, net):
    batch = settled(currency=currency, amount=amount)

    document = etree.fromstring(file_of(batch, PayoutFileKind.PAIN001))

    assert pain_schema().validate(document), pain_schema().error_log
    assert document.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS) == batch.id
    amount_node = document.find(".//p:CdtTrfTxInf/p:Amt/p:InstdAmt", namespaces=NS)
    assert (amount_node.text, amount_node.get("Ccy")) == (net, currency)
    assert document.findtext(".//p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == "DE89370400440532013000"
    assert document.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == net
    created = document.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CreDtTm", namespaces=NS)
    assert created.endswith("+00:00") and dt.datetime.fromisoformat(created) == batch.created_at.replace(microsecond=0)


@pytest.mark.django_db
def test_the_schema_check_refuses_a_broken_file():
    batch = settled()
    broken = file_of(batch, PayoutFileKind.PAIN001).replace(b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>CASH</PmtMtd>", 1)

    with pytest.raises(InvalidPayoutFile):
        pain_validate(broken)


@pytest.mark.django_db
def test_the_csv_names_the_transfer():
    batch = settled()

    [row] = list(csv.DictReader(io.StringIO(file_of(batch, PayoutFileKind.CSV).decode())))

    assert (row["batch_id"], row["payee_iban"], row["amount"], row["currency"]) == (batch.id, batch.payee_iban, "1234.00", "EUR")
    assert row["payee_name"] == "Café Ünïcode & Co"


@pytest.mark.django_db
def test_files_built_again_are_the_same_bytes_even_after_the_merchant_changes_account():
    batch = settled()
    before = {f.kind: (bytes(f.content), f.sha256) for f in batch.payout_files.all()}
    batch.merchant.settlement_iban = "GB33BUKB20201555555555"
    batch.merchant.save()

    payout_files_generate(batch=SettlementBatch.objects.get(pk=batch.pk))

    assert {f.kind: (bytes(f.content), f.sha256) for f in batch.payout_files.all()} == before


@pytest.mark.django_db
def test_a_batch_held_for_want_of_an_account_gets_its_files_once_the_merchant_has_one():
    batch = settled(iban="", bic="")
    assert (batch.status, batch.payout_files.count()) == (BatchStatus.HELD, 0)
    with pytest.raises(BusinessRuleViolation):
        payout_files_generate(batch=batch)
    batch.merchant.settlement_iban = "FR1420041010050500013M02606"
    batch.merchant.save()

    payout_files_generate(batch=batch)

    assert batch.payout_files.count() == 2
    assert b"FR1420041010050500013M02606" in file_of(batch, PayoutFileKind.PAIN001)


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [("settlement_iban", "DE00370400440532013000"), ("settlement_bic", "NOTABIC")])
def test_a_merchant_account_is_checked_with_schwifty(field, value):
    merchant = MerchantFactory(code="shop-y")
    setattr(merchant, field, value)

    with pytest.raises(ValidationError) as caught:
        merchant.full_clean()
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_an_account_is_kept_compact():
    merchant = MerchantFactory(code="shop-z", settlement_iban="de89 3704 0044 0532 0130 00", settlement_bic="cobadeff")
    merchant.full_clean()
    assert (merchant.settlement_iban, merchant.settlement_bic) == ("DE89370400440532013000", "COBADEFF")


@pytest.mark.django_db
def test_without_the_banks_own_account_a_batch_is_held_not_lost(settings):
    settings.PGI_SETTLEMENT = {**settings.PGI_SETTLEMENT, "debtor_iban": ""}

    batch = settled()

    assert (batch.status, batch.status_reason[:17], batch.payout_files.count()) == (BatchStatus.HELD, "NO_DEBTOR_ACCOUNT", 0)
    assert batch.net_amount == 1234
