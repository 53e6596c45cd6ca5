"""The settlement batch: totals to the cent, settled exactly once, reruns and concurrent runs add nothing."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Q, Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.models import Payment
from pgi.errors import BusinessRuleViolation
from refunds.models import Refund
from settlements.fees import Fee, fee_of
from settlements.models import (
    BatchStatus,
    FeePlan,
    FeePlanCurrency,
    LineKind,
    SettlementBatch,
    SettlementLine,
)
from settlements.services import payout_files_generate, settlement_batch_move, settlement_run
from tests.factories import MerchantFactory, captured_payment, completed_refund

NOW = timezone.now().replace(microsecond=0)
CUTOFF = NOW - dt.timedelta(hours=1)
BEFORE = CUTOFF - dt.timedelta(hours=2)


def fee_plan(merchant, bps=140, currency="USD", fixed="0.25", minimum=None):
    plan = FeePlan.objects.create(merchant=merchant, basis_points=bps)
    FeePlanCurrency.objects.create(plan=plan, currency=currency, fixed=Decimal(fixed), minimum=minimum)
    return plan


def batches(merchant):
    return list(SettlementBatch.objects.filter(merchant=merchant).order_by("cutoff"))


@pytest.fixture
def shop(db):
    return MerchantFactory(code="shop-1", name="Shop One", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")


def test_a_batch_nets_payments_minus_refunds_minus_fees(shop):
    fee_plan(shop, bps=140, fixed="0.25")
    first = captured_payment(merchant=shop, amount="100.00", captured_at=BEFORE)
    captured_payment(merchant=shop, amount="20.00", captured_at=BEFORE)
    completed_refund(payment=first, amount="30.00", completed_at=BEFORE + dt.timedelta(minutes=5))

    [outcome] = settlement_run(cutoff=CUTOFF)

    batch = SettlementBatch.objects.get(pk=outcome.batch_id)
    # fees: 1.40 + 0.25 and 0.28 + 0.25; refunds carry no fee.
    assert (batch.gross_amount, batch.refund_amount, batch.fee_amount) == (Decimal("120"), Decimal("30"), Decimal("2.18"))
    assert batch.net_amount == Decimal("87.82")
    assert (batch.payment_count, batch.refund_count, batch.status) == (2, 1, BatchStatus.PENDING)
    assert batch.payee_iban == "DE89370400440532013000"


def test_a_partial_capture_settles_the_captured_amount(shop):
    payment = captured_payment(merchant=shop, amount="100.00", captured_amount=Decimal("60.00"), captured_at=BEFORE)

    settlement_run(cutoff=CUTOFF)

    assert SettlementLine.objects.get(payment=payment, kind=LineKind.PAYMENT).amount == Decimal("60.00")


def test_what_is_captured_after_the_cutoff_or_flagged_waits(shop):
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    later = captured_payment(merchant=shop, amount="5.00", captured_at=CUTOFF + dt.timedelta(seconds=1))
    flagged = captured_payment(merchant=shop, amount="7.00", captured_at=BEFORE, needs_attention=True)

    settlement_run(cutoff=CUTOFF)

    settled = set(SettlementLine.objects.values_list("payment_id", flat=True))
    assert later.pk not in settled and flagged.pk not in settled
    assert batches(shop)[0].gross_amount == Decimal("10.00")


def test_a_rerun_of_the_same_cutoff_adds_nothing(shop):
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    settlement_run(cutoff=CUTOFF)
    lines = SettlementLine.objects.count()
    # Even with something new behind the cut-off (committed late): it waits for the next cut-off.
    captured_payment(merchant=shop, amount="3.00", captured_at=BEFORE)

    [outcome] = settlement_run(cutoff=CUTOFF)

    assert (outcome.created, SettlementLine.objects.count(), len(batches(shop))) == (False, lines, 1)


def test_a_refund_after_settlement_lands_in_the_next_batch(shop):
    payment = captured_payment(merchant=shop, amount="50.00", captured_at=BEFORE)
    settlement_run(cutoff=CUTOFF)
    refund = completed_refund(payment=payment, amount="20.00", completed_at=CUTOFF + dt.timedelta(minutes=10))
    captured_payment(merchant=shop, amount="40.00", captured_at=CUTOFF + dt.timedelta(minutes=20))

    settlement_run(cutoff=NOW)

    first, second = batches(shop)
    assert first.refund_count == 0 and first.net_amount == Decimal("50.00")
    assert SettlementLine.objects.get(refund=refund).batch == second
    assert (second.gross_amount, second.refund_amount, second.net_amount) == (Decimal("40"), Decimal("20"), Decimal("20"))


def test_a_negative_net_is_carried_into_the_next_batch(shop):
    payment = captured_payment(merchant=shop, amount="50.00", captured_at=BEFORE - dt.timedelta(days=1))
    settlement_run(cutoff=BEFORE - dt.timedelta(hours=1))
    completed_refund(payment=payment, amount="50.00", completed_at=BEFORE)
    captured_payment(merchant=shop, amount="5.00", captured_at=BEFORE)
    settlement_run(cutoff=CUTOFF)
    captured_payment(merchant=shop, amount="100.00", captured_at=CUTOFF + dt.timedelta(minutes=1))

    settlement_run(cutoff=NOW)

    _, negative, third = batches(shop)
    assert (negative.net_amount, negative.status) == (Decimal("-45.00"), BatchStatus.CARRIED_FORWARD)
    assert not negative.payout_files.exists()
    assert (third.carried_amount, third.net_amount, third.status) == (Decimal("-45.00"), Decimal("55.00"), BatchStatus.PENDING)
    assert SettlementLine.objects.get(kind=LineKind.CARRY).carried_batch == negative


def orphan_lines() -> int:
    """Lines whose batch or carried batch is not there (the database has no foreign key for them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM settlements_settlementline l"
            " LEFT JOIN settlements_settlementbatch b ON b.id = l.batch_id"
            " LEFT JOIN settlements_settlementbatch c ON c.id = l.carried_batch_id"
            " WHERE b.id IS NULL OR (l.carried_batch_id IS NOT NULL AND c.id IS NULL)"
        )
        return cursor.fetchone()[0]


def test_lines_never_lack_or_outlive_their_batch(shop, monkeypatch):
    from settlements import services

    payment = captured_payment(merchant=shop, amount="50.00", captured_at=BEFORE - dt.timedelta(days=1))
    settlement_run(cutoff=BEFORE - dt.timedelta(hours=1))
    completed_refund(payment=payment, amount="50.00", completed_at=BEFORE)
    captured_payment(merchant=shop, amount="5.00", captured_at=BEFORE)
    settlement_run(cutoff=CUTOFF)  # nets -45: carried forward
    captured_payment(merchant=shop, amount="100.00", captured_at=CUTOFF + dt.timedelta(minutes=1))
    lines = SettlementLine.objects.count()

    # A run that fails after its lines are written leaves no batch and no line behind.
    def broken(**kwargs):
        raise RuntimeError("payout files failed")

    monkeypatch.setattr(services, "_batch_finish", broken)
    with pytest.raises(RuntimeError):
        settlement_run(cutoff=NOW)
    assert (SettlementBatch.objects.count(), SettlementLine.objects.count(), orphan_lines()) == (2, lines, 0)
    monkeypatch.undo()

    settlement_run(cutoff=NOW)
    assert SettlementLine.objects.filter(kind=LineKind.CARRY).count() == 1 and orphan_lines() == 0
    assert all(line.batch.currency == "USD" for line in SettlementLine.objects.select_related("batch"))

    # A batch goes with its lines (Django's cascade); one that is carried into another cannot go.
    _, carried, last = batches(shop)
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        carried.delete()
    last.delete()
    assert orphan_lines() == 0 and not SettlementLine.objects.filter(batch_id=last.id).exists()


def test_each_merchant_and_currency_gets_its_own_batch(shop):
    other = MerchantFactory(code="shop-2")
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    captured_payment(merchant=shop, amount="1000", currency="JPY", captured_at=BEFORE)
    captured_payment(merchant=other, amount="3.000", currency="KWD", captured_at=BEFORE)

    outcomes = settlement_run(cutoff=CUTOFF)

    assert sorted((o.currency, o.created) for o in outcomes) == [("JPY", True), ("KWD", True), ("USD", True)]
    held = SettlementBatch.objects.get(merchant=other)
    assert (held.status, held.status_reason[:21]) == (BatchStatus.HELD, "NO_SETTLEMENT_ACCOUNT")


def test_a_batch_held_for_want_of_an_account_is_released_only_once_its_files_are_built(shop):
    other = MerchantFactory(code="shop-2")
    captured_payment(merchant=other, amount="10.00", captured_at=BEFORE)
    [outcome] = settlement_run(cutoff=CUTOFF, merchant=other)
    held = SettlementBatch.objects.get(pk=outcome.batch_id)
    assert held.status == BatchStatus.HELD and not held.payout_files.exists()

    with pytest.raises(BusinessRuleViolation) as caught:
        settlement_batch_move(batch_id=held.pk, to_status=BatchStatus.PENDING, staff_user="ann", reason="released")
    assert caught.value.code == "SETTLEMENT_NO_PAYOUT_FILES"
    held.refresh_from_db()
    assert (held.status, held.status_reason[:21]) == (BatchStatus.HELD, "NO_SETTLEMENT_ACCOUNT")

    MerchantFactory._meta.model.objects.filter(pk=other.pk).update(
        settlement_iban=shop.settlement_iban, settlement_bic=shop.settlement_bic
    )
    payout_files_generate(batch=held)
    released = settlement_batch_move(batch_id=held.pk, to_status=BatchStatus.PENDING, staff_user="ann", reason="released")
    assert (released.status, released.status_reason, released.payout_files.count()) == (BatchStatus.PENDING, "", 2)


def test_one_merchant_only_with_merchant(shop):
    other = MerchantFactory(code="shop-2")
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    captured_payment(merchant=other, amount="10.00", captured_at=BEFORE)

    settlement_run(cutoff=CUTOFF, merchant=other)

    assert list(SettlementBatch.objects.values_list("merchant__code", flat=True)) == ["shop-2"]


def test_a_dry_run_writes_nothing(shop):
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)

    [outcome] = settlement_run(cutoff=CUTOFF, dry_run=True)

    assert outcome.totals.net == Decimal("10.00") and outcome.batch_id is None
    assert not SettlementBatch.objects.exists() and not SettlementLine.objects.exists()


def test_a_cutoff_in_the_future_is_refused(shop):
    with pytest.raises(BusinessRuleViolation) as caught:
        settlement_run(cutoff=timezone.now() + dt.timedelta(minutes=1))
    assert caught.value.code == "CUTOFF_IN_FUTURE"


def test_the_database_refuses_a_second_line_for_a_payment(shop):
    from django.db import IntegrityError, transaction

    payment = captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    [outcome] = settlement_run(cutoff=CUTOFF)
    with pytest.raises(IntegrityError), transaction.atomic():
        SettlementLine.objects.create(
            batch_id=outcome.batch_id, kind=LineKind.PAYMENT, payment=payment, amount=1, net=1, occurred_at=BEFORE
        )


def test_staff_hold_needs_a_reason_and_is_recorded(shop):
    captured_payment(merchant=shop, amount="10.00", captured_at=BEFORE)
    [outcome] = settlement_run(cutoff=CUTOFF)

    with pytest.raises(BusinessRuleViolation) as caught:
        settlement_batch_move(batch_id=outcome.batch_id, to_status=BatchStatus.HELD, staff_user="ann", reason=" ")
    assert caught.value.code == "SETTLEMENT_HOLD_REASON_REQUIRED"
    settlement_batch_move(batch_id=outcome.batch_id, to_status=BatchStatus.HELD, staff_user="ann", reason="KYC review")
    with pytest.raises(BusinessRuleViolation) as caught:
        settlement_batch_move(batch_id=outcome.batch_id, to_status=BatchStatus.PAID_OUT, staff_user="bob", reason="")
    assert caught.value.code == "SETTLEMENT_PAYOUT_REFERENCE_REQUIRED"
    batch = settlement_batch_move(batch_id=outcome.batch_id, to_status=BatchStatus.PAID_OUT, staff_user="bob", reason="BANK-REF-77")

    assert batch.status == BatchStatus.PAID_OUT
    assert [(c.to_status, c.changed_by, c.reason) for c in batch.status_changes.all()] == [
        (BatchStatus.PENDING, "system", ""), (BatchStatus.HELD, "ann", "KYC review"), (BatchStatus.PAID_OUT, "bob", "BANK-REF-77"),
    ]
    with pytest.raises(BusinessRuleViolation):
        settlement_batch_move(batch_id=outcome.batch_id, to_status=BatchStatus.HELD, staff_user="ann", reason="again")


# Randomized data: every batch's totals are the sums of its lines, and of the payments and refunds
# behind them, to the cent; a rerun adds nothing.

AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
PAYMENT = st.tuples(AMOUNTS, st.booleans(), st.floats(0, 1), st.booleans())  # amount, partial, refund share, before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payments=st.lists(PAYMENT, min_size=1, max_size=12),
    bps=st.integers(0, 500),
    fixed=st.sampled_from(["0", "0.25", "0.30"]),
    minimum=st.sampled_from([None, "0.50", "5.00"]),
)
@pytest.mark.django_db
def test_totals_equal_the_lines_and_the_rows_behind_them(payments, bps, fixed, minimum):
    merchant = MerchantFactory(settlement_iban="DE89370400440532013000")
    plan = FeePlan.objects.create(merchant=merchant, basis_points=bps)
    FeePlanCurrency.objects.create(plan=plan, currency="EUR", fixed=Decimal(fixed), minimum=minimum and Decimal(minimum))
    fee = Fee(basis_points=bps, fixed=Decimal(fixed), minimum=minimum and Decimal(minimum))
    expected_fees = Decimal(0)
    for amount, partial, share, before in payments:
        captured = (amount / 2).quantize(Decimal("0.01")) if partial and amount >= Decimal("0.02") else None
        at = BEFORE if before else CUTOFF + dt.timedelta(minutes=1)
        payment = captured_payment(merchant=merchant, amount=amount, currency="EUR", captured_at=at, captured_amount=captured)
        refund = (((captured or amount) * Decimal(str(share))).quantize(Decimal("0.01")))
        if refund > 0:
            completed_refund(payment=payment, amount=refund, completed_at=at + dt.timedelta(seconds=1))
        if before:
            expected_fees += fee_of(captured or amount, fee, "EUR")

    settlement_run(cutoff=CUTOFF, merchant=merchant)
    settlement_run(cutoff=CUTOFF, merchant=merchant)  # a rerun

    settled = SettlementBatch.objects.filter(merchant=merchant)
    assert settled.count() <= 1
    for batch in settled:
        lines = batch.lines.aggregate(
            gross=Sum("amount", filter=Q(kind=LineKind.PAYMENT), default=0),
            refunds=Sum("amount", filter=Q(kind=LineKind.REFUND), default=0),
            fees=Sum("fee", default=0),
            net=Sum("net", default=0),
        )
        payment_ids = batch.lines.filter(kind=LineKind.PAYMENT).values("payment_id")
        rows = Payment.objects.filter(pk__in=payment_ids)
        gross = sum((p.captured_amount or p.amount for p in rows), Decimal(0))
        refunds = Refund.objects.filter(pk__in=batch.lines.values("refund_id")).aggregate(s=Sum("amount", default=0))["s"]
        assert lines == {"gross": batch.gross_amount, "refunds": batch.refund_amount, "fees": batch.fee_amount, "net": batch.net_amount}
        assert (gross, refunds, expected_fees) == (batch.gross_amount, batch.refund_amount, batch.fee_amount)
        assert batch.net_amount == gross - refunds - expected_fees
        assert batch.payment_count == sum(1 for *_, before in payments if before)


# Two workers at once: one batch, every payment once.


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_make_one_batch():
    merchant = MerchantFactory(code="busy", settlement_iban="DE89370400440532013000")
    for i in range(200):
        captured_payment(merchant=merchant, amount=f"{i + 1}.00", captured_at=BEFORE)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.extend(settlement_run(cutoff=CUTOFF))
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # The second run waits for the first, then finds nothing left to settle (or, had it looked
    # before the first committed, the cut-off's batch made): one batch either way.
    assert [outcome.created for outcome in results] in ([True], [True, False], [False, True])
    [batch] = SettlementBatch.objects.filter(merchant=merchant)
    assert batch.payment_count == 200 == SettlementLine.objects.filter(batch=batch).count()
    assert batch.gross_amount == Decimal(sum(range(1, 201)))


@pytest.mark.django_db(transaction=True)
def test_two_runs_with_different_cutoffs_settle_each_payment_once():
    merchant = MerchantFactory(code="busy2", settlement_iban="DE89370400440532013000")
    for i in range(100):
        captured_payment(merchant=merchant, amount="1.00", captured_at=BEFORE)
    barrier = threading.Barrier(2)

    def run(cutoff):
        barrier.wait()
        try:
            settlement_run(cutoff=cutoff)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(c,)) for c in (CUTOFF, NOW - dt.timedelta(minutes=1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert SettlementLine.objects.filter(kind=LineKind.PAYMENT).count() == 100
    assert SettlementBatch.objects.filter(merchant=merchant).aggregate(s=Sum("payment_count"))["s"] == 100
    assert connection.vendor == "postgresql"


def test_a_straggler_older_than_the_lookback_waits_for_a_full_sweep(shop):
    old = captured_payment(merchant=shop, amount="8.00", captured_at=CUTOFF - dt.timedelta(days=40))
    captured_payment(merchant=shop, amount="2.00", captured_at=BEFORE)

    settlement_run(cutoff=CUTOFF)
    assert not SettlementLine.objects.filter(payment=old).exists()

    settlement_run(cutoff=NOW - dt.timedelta(minutes=1), full=True)
    assert SettlementLine.objects.get(payment=old).batch.cutoff == NOW - dt.timedelta(minutes=1)
