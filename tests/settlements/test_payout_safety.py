"""What a payee's text, the largest amounts, the bank's own account settings and the SEPA rules do to
a settlement run: one batch is held with a reason, never the whole run lost; files built again
are the bytes the batch was made with."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone
from lxml import etree

from pgi.errors import BusinessRuleViolation
from settlements.apis import SettlementOutputSerializer
from settlements.checks import cutoff_time_problem, settlement_settings_check
from settlements.models import BatchStatus, LineKind, PayoutFileKind, SettlementBatch, SettlementStatusChange
from settlements.payout_files import NAMESPACE, pain_schema
from settlements.sepa import csv_text, sepa_text
from settlements.services import payout_files_generate, settlement_batch_move, settlement_run
from tests.factories import MerchantFactory, captured_payment, completed_refund

pytestmark = pytest.mark.django_db

CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
BEFORE = CUTOFF - dt.timedelta(hours=1)
NS = {"p": NAMESPACE}
IBAN, BIC = "DE89370400440532013000", "COBADEFFXXX"


def shop(code, name, iban=IBAN, bic=BIC, amount="100.00", currency="EUR"):
    # Saved without the admin's validation: a name stored before PGI refused control characters.
    merchant = MerchantFactory(code=code, name=name, settlement_iban=iban, settlement_bic=bic)
    captured_payment(merchant=merchant, amount=amount, currency=currency, captured_at=BEFORE)
    return merchant


def batch_of(merchant, currency="EUR") -> SettlementBatch:
    return SettlementBatch.objects.get(merchant=merchant, currency=currency)


def pain(batch) -> etree._Element:
    document = etree.fromstring(bytes(batch.payout_files.get(kind=PayoutFileKind.PAIN001).content))
    assert pain_schema().validate(document), pain_schema().error_log
    return document


# --- 1. A payee's text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Café Ünïcode & Co", "Cafe Unicode + Co"),
        ("Straße\x0bGmbH\x01", "Strasse GmbH"),
        ("Ærø Łódź — Søn", "AEro Lodz - Son"),
        ("a" * 69 + " tail", "a" * 69),  # the cut leaves no trailing space
        ("商店", ""),
    ],
)
def test_text_is_reduced_to_the_sepa_character_set(value, expected):
    assert sepa_text(value, 70) == expected


def test_a_control_character_in_a_name_is_refused_by_the_merchant_form(admin_client):
    merchant = MerchantFactory(code="shop-cc", name="Shop")
    merchant.name = "Shop\x0bOne"

    with pytest.raises(ValidationError) as caught:
        merchant.full_clean()

    assert "name" in caught.value.message_dict and "U+000B" in caught.value.message_dict["name"][0]


def test_a_control_character_in_a_stored_name_neither_crashes_the_run_nor_reaches_the_file():
    bad = shop("shop-bad", "Bad\x0bName\x01 Ltd")
    good = shop("shop-good", "Good Shop")

    outcomes = settlement_run(cutoff=CUTOFF)

    assert sum(o.created for o in outcomes) == 2
    assert batch_of(good).status == batch_of(bad).status == BatchStatus.PENDING
    assert pain(batch_of(bad)).findtext(".//p:Cdtr/p:Nm", namespaces=NS) == "Bad Name Ltd"


def test_a_name_no_file_can_carry_holds_that_batch_and_the_others_settle():
    unreadable = shop("shop-cn", "商店")
    good = shop("shop-ok", "Good Shop")

    settlement_run(cutoff=CUTOFF)

    held = batch_of(unreadable)
    assert (held.status, held.status_reason[:19], held.payout_files.count()) == (
        BatchStatus.HELD, "INVALID_PAYOUT_FILE", 0,
    )
    assert batch_of(good).status == BatchStatus.PENDING and batch_of(good).payout_files.count() == 2


# --- 2. The largest amounts ----------------------------------------------------------------------


def test_two_of_the_largest_payments_settle_and_the_dry_run_says_the_same():
    merchant = shop("shop-big", "Big Shop", amount="99999999999999.99")
    captured_payment(merchant=merchant, amount="99999999999999.99", currency="EUR", captured_at=BEFORE)
    [preview] = settlement_run(cutoff=CUTOFF, dry_run=True)

    [outcome] = settlement_run(cutoff=CUTOFF)

    batch = batch_of(merchant)
    assert batch.net_amount == preview.totals.net == outcome.totals.net == Decimal("199999999999999.98")
    # More than one SEPA credit transfer carries: held with its reason, not lost.
    assert (batch.status, batch.status_reason[:19]) == (BatchStatus.HELD, "INVALID_PAYOUT_FILE")
    assert "SEPA" in batch.status_reason
    # The merchant's API writes the figures as they are.
    data = SettlementOutputSerializer(batch).data
    assert (data["grossAmount"], data["netAmount"]) == (Decimal("199999999999999.98"), Decimal("199999999999999.98"))


def test_a_carried_net_beyond_one_payments_digits_is_carried_whole():
    """Two of the largest payments refunded after they settled: the next batch's net (-2 x 10^14)
    is carried into a line of its own, wider than any one payment."""
    early = CUTOFF - dt.timedelta(days=2)
    merchant = MerchantFactory(code="shop-carry", name="Carry Shop", settlement_iban=IBAN, settlement_bic=BIC)
    payments = [
        captured_payment(merchant=merchant, amount="99999999999999.99", currency="EUR", captured_at=early)
        for _ in range(2)
    ]
    settlement_run(cutoff=early + dt.timedelta(minutes=1))
    for payment in payments:
        completed_refund(payment=payment, amount="99999999999999.99", completed_at=early + dt.timedelta(hours=1))
    settlement_run(cutoff=early + dt.timedelta(hours=2))
    captured_payment(merchant=merchant, amount="10.00", currency="EUR", captured_at=BEFORE)

    settlement_run(cutoff=CUTOFF)

    first, negative, last = SettlementBatch.objects.filter(merchant=merchant).order_by("cutoff")
    assert negative.net_amount == Decimal("-199999999999999.98")
    assert negative.status == BatchStatus.CARRIED_FORWARD
    carry = last.lines.get(kind=LineKind.CARRY)
    assert (carry.amount, carry.net, carry.carried_batch) == (Decimal("-199999999999999.98"),) * 2 + (negative,)
    assert last.net_amount == Decimal("-199999999999989.98")


# --- 3. Building the files again -----------------------------------------------------------------


def test_files_built_again_use_the_batchs_debtor_not_the_current_settings(settings):
    merchant = shop("shop-r", "Rebuild Shop")
    settlement_run(cutoff=CUTOFF)
    batch = batch_of(merchant)
    before = {f.kind: bytes(f.content) for f in batch.payout_files.all()}
    settings.PGI_SETTLEMENT = {
        **settings.PGI_SETTLEMENT, "debtor_name": "Other Bank", "debtor_iban": "FR1420041010050500013M02606",
        "debtor_bic": "PSSTFRPPXXX",
    }

    payout_files_generate(batch=SettlementBatch.objects.get(pk=batch.pk), rebuilt_by="staff-1")

    assert {f.kind: bytes(f.content) for f in batch.payout_files.all()} == before
    assert (batch.debtor_iban, batch.debtor_bic) == (IBAN, BIC)
    change = SettlementStatusChange.objects.filter(batch=batch).last()
    assert change.changed_by == "staff-1" and change.reason.startswith("Payout files built again (identical)")


def test_a_paid_out_batchs_files_are_never_built_again():
    merchant = shop("shop-p", "Paid Shop")
    settlement_run(cutoff=CUTOFF)
    batch = settlement_batch_move(
        batch_id=batch_of(merchant).pk, to_status=BatchStatus.PAID_OUT, staff_user="payer", reason="BANK-1"
    )
    stored = {f.kind: f.sha256 for f in batch.payout_files.all()}

    with pytest.raises(BusinessRuleViolation) as caught:
        payout_files_generate(batch=batch, rebuilt_by="staff-1")

    assert caught.value.code == "SETTLEMENT_PAID_OUT"
    assert {f.kind: f.sha256 for f in batch.payout_files.all()} == stored


# --- 4. The bank's own account -------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban, bic",
    [("garbage", BIC), (IBAN, "XXXXXXXX1"), ("DE00370400440532013000", BIC)],
)
def test_a_bad_debtor_account_is_a_startup_error_and_holds_batches_at_run_time(settings, iban, bic):
    settings.PGI_SETTLEMENT = {**settings.PGI_SETTLEMENT, "debtor_iban": iban, "debtor_bic": bic}
    merchant = shop("shop-d", "Debtor Shop")

    assert "pgi.E040" in [message.id for message in settlement_settings_check()]
    [outcome] = settlement_run(cutoff=CUTOFF)

    batch = batch_of(merchant)
    assert outcome.created and (batch.status, batch.status_reason[:19]) == (BatchStatus.HELD, "INVALID_PAYOUT_FILE")
    assert batch.payout_files.count() == 0


@pytest.mark.parametrize("key", ["payout_days", "lookback_days"])
def test_negative_settlement_days_are_a_startup_error(settings, key):
    settings.PGI_SETTLEMENT = {**settings.PGI_SETTLEMENT, key: -1}

    assert "pgi.E042" in [message.id for message in settlement_settings_check()]


def test_the_settings_shipped_pass_the_checks():
    assert settlement_settings_check() == []
    call_command("check", "--fail-level", "ERROR")


def test_a_cutoff_the_clocks_skip_or_repeat_is_found():
    import zoneinfo

    berlin, new_york = zoneinfo.ZoneInfo("Europe/Berlin"), zoneinfo.ZoneInfo("America/New_York")
    assert "does not exist on 2026-03-29" in cutoff_time_problem(dt.time(2, 30), berlin, 2026)
    assert "happens twice on 2026-11-01" in cutoff_time_problem(dt.time(1, 30), new_york, 2026)
    assert cutoff_time_problem(dt.time(0, 0), berlin, 2026) == ""


# --- 5. CSV cells ---------------------------------------------------------------------------------


def test_a_formula_in_a_name_is_shown_not_run_and_a_row_stays_one_line():
    merchant = shop("shop-f", '=HYPERLINK("http://x.example","click")')
    settlement_run(cutoff=CUTOFF)

    text = bytes(batch_of(merchant).payout_files.get(kind=PayoutFileKind.CSV).content).decode()

    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["payee_name"] == '\'=HYPERLINK("http://x.example","click")'
    assert csv_text("-1+2") == "'-1+2" and csv_text("a\r\nb") == "a  b" and csv_text("Shop") == "Shop"


# --- 6. SEPA or not -------------------------------------------------------------------------------


def test_euro_to_a_country_outside_sepa_is_no_sepa_transfer_and_names_the_payees_bank():
    merchant = shop("shop-tr", "Istanbul Shop", iban="TR330006100519786457841326", bic="TGBATRISXXX")
    settlement_run(cutoff=CUTOFF)

    document = pain(batch_of(merchant))

    assert document.find(".//p:SvcLvl", namespaces=NS) is None
    assert document.findtext(".//p:ChrgBr", namespaces=NS) == "SHAR"
    assert document.findtext(".//p:CdtrAgt/p:FinInstnId/p:BICFI", namespaces=NS) == "TGBATRISXXX"


def test_a_transfer_outside_sepa_without_the_payees_bic_is_held_with_its_reason():
    outside = shop("shop-nobic", "No BIC Shop", iban="TR330006100519786457841326", bic="")
    inside = shop("shop-sepa", "SEPA Shop", bic="")

    settlement_run(cutoff=CUTOFF)

    assert (batch_of(outside).status, batch_of(outside).status_reason[:17]) == (BatchStatus.HELD, "NO_SETTLEMENT_BIC")
    assert batch_of(inside).status == BatchStatus.PENDING  # inside SEPA the BIC is optional
    assert pain(batch_of(inside)).findtext(".//p:SvcLvl/p:Cd", namespaces=NS) == "SEPA"


@pytest.mark.parametrize(
    "iban, bic, ok",
    [
        ("GB33BUKB20201555555555", "COBADEFFXXX", False),  # a German bank for a British account
        ("GB33BUKB20201555555555", "BUKBGB22XXX", True),
        ("GB33BUKB20201555555555", "HBUKJESHXXX", True),  # Jersey banks hold GB IBANs
        (IBAN, "", True),
    ],
)
def test_a_merchant_account_refuses_a_bic_of_another_country(iban, bic, ok):
    merchant = MerchantFactory(code="shop-pair", settlement_iban=iban, settlement_bic=bic)
    if ok:
        merchant.full_clean()
        return
    with pytest.raises(ValidationError) as caught:
        merchant.full_clean()
    assert "settlement_bic" in caught.value.message_dict


# --- 12. The remittance text ---------------------------------------------------------------------


def test_the_remittance_keeps_the_cutoffs_seconds_unless_they_are_zero():
    merchant = shop("shop-s", "Seconds Shop")
    cutoff = CUTOFF.replace(second=7)
    settlement_run(cutoff=cutoff)

    text = pain(batch_of(merchant)).findtext(".//p:RmtInf/p:Ustrd", namespaces=NS)

    assert text.endswith(f"{cutoff.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
