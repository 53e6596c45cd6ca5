"""Bulk refund files through refunds.bulk: accepted whole or rejected whole, on real PostgreSQL."""

import csv
import io
import threading
import time
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from payments.models import GatewayOperation, OperationKind, OperationStatus, Payment, PaymentStatus
from payments.services.core import payment_lock
from refunds import bulk
from refunds.bulk import RefundFileRefused, refund_file_upload
from refunds.models import Refund, RefundFile, RefundSource, RefundStatus, RefundStatusChange
from refunds.services import refund_create, refunds_due, refunds_process
from refunds.signals import refunds_received_in_bulk

from .conftest import captured_payments
from .test_refund_lifecycle import completed_payment

pytestmark = pytest.mark.django_db


def csv_bytes(rows, header=("payment_id", "amount", "reason", "idempotency_key")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def report_of(refund_file: RefundFile) -> set[tuple[str, str, str]]:
    """(row, column, code) of each error in the file's report."""
    lines = list(csv.reader(io.StringIO(refund_file.error_report)))
    assert lines[0] == ["row", "column", "code", "error"]
    return {(row, column, code) for row, column, code, _ in lines[1:]}


def test_a_file_of_two_thousand_rows_is_accepted_whole(merchant, uploader):
    usd = captured_payments(merchant, 1000, amount="10.00")
    jpy = captured_payments(merchant, 500, amount="1000", currency="JPY")
    rows = [(p.id, "4.00", "damaged", f"usd-{i}-a") for i, p in enumerate(usd)]
    rows += [(p.id, "6.00", "late", "") for p in usd[:500]]  # a second refund of half of them: 10.00 in all
    rows += [(p.id, "1000", "", f"jpy-{i}") for i, p in enumerate(jpy)]
    signalled = []

    def receiver(sender, refunds, source, **kwargs):
        signalled.extend((refund.id, "", source) for refund in refunds)

    refunds_received_in_bulk.connect(receiver)
    try:
        started = time.monotonic()
        refund_file = refund_file_upload(name="returns.csv", content=csv_bytes(rows), user=uploader)
        took = time.monotonic() - started
    finally:
        refunds_received_in_bulk.disconnect(receiver)

    assert refund_file.outcome == RefundFile.Outcome.ACCEPTED
    assert (refund_file.rows, refund_file.errors, refund_file.uploaded_by) == (2000, 0, uploader)
    assert refund_file.total_by_currency == {"JPY": "500000", "USD": "7000.00"}
    refunds = Refund.objects.filter(refund_file=refund_file)
    assert refunds.count() == 2000
    assert set(refunds.values_list("status", "source")) == {(RefundStatus.PENDING, RefundSource.BULK_FILE)}
    first = refunds.get(bulk_key="usd-0-a")
    assert (first.payment_id, first.amount, first.currency, first.reason) == (
        usd[0].id,
        Decimal("4.00"),
        "USD",
        "damaged",
    )
    assert refunds.filter(bulk_key__isnull=True).count() == 500
    operations = GatewayOperation.objects.filter(kind=OperationKind.REFUND)
    assert operations.count() == 2000
    assert operations.filter(status=OperationStatus.PENDING, next_look_at__lte=timezone.now()).count() == 2000
    assert set(refunds.values_list("id", flat=True)) == set(operations.values_list("idempotency_key", flat=True))
    assert set(refunds.values_list("operation__idempotency_key", flat=True)) == set(
        refunds.values_list("id", flat=True)
    )
    assert (
        RefundStatusChange.objects.filter(
            refund__refund_file=refund_file, to_status=RefundStatus.PENDING, source="bulk_file"
        ).count()
        == 2000
    )
    assert len(signalled) == 2000 and {(s[1], s[2]) for s in signalled} == {("", RefundSource.BULK_FILE)}
    assert took < 20, f"2000 rows took {took:.1f} s"

    # Due now: the batch job's next run takes them.
    assert set(refunds_due(50)) <= set(refunds.values_list("id", flat=True))


def test_the_batch_job_sends_a_files_refunds_to_the_gateway(principal, uploader):
    payments = [completed_payment(principal) for _ in range(2)]
    content = csv_bytes([(payments[0].id, "30.00", "damaged", ""), (payments[1].id, "100.00", "returned", "")])
    refund_file = refund_file_upload(name="two.csv", content=content, user=uploader)
    assert refund_file.outcome == RefundFile.Outcome.ACCEPTED

    assert refunds_process() == {"completed": 2, "failed": 0, "waiting": 0, "flagged": 0}

    assert set(Refund.objects.filter(refund_file=refund_file).values_list("status", flat=True)) == {
        RefundStatus.COMPLETED
    }
    assert sorted(Payment.objects.filter(pk__in=[p.id for p in payments]).values_list("status", flat=True)) == [
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    ]


def test_every_kind_of_row_error_is_reported_and_nothing_is_written(merchant, uploader, principal):
    usd = captured_payments(merchant, 6, amount="10.00")
    (jpy,) = captured_payments(merchant, 1, amount="1000", currency="JPY")
    (authorized,) = captured_payments(merchant, 1, status=PaymentStatus.AUTHORIZED)
    earlier = refund_file_upload(
        name="earlier.csv", content=csv_bytes([(usd[5].id, "1.00", "", "used-key")]), user=uploader
    )
    assert earlier.outcome == RefundFile.Outcome.ACCEPTED
    refund_create(payment_id=usd[4].id, amount=Decimal("8.00"))  # Pending: 2.00 of usd[4] remains
    missing = "pay_" + "0" * 26
    rows = [
        (usd[0].id, "5.00", "fine", "k1"),  # row 2: valid
        ("", "1.00", "", ""),  # 3
        ("order-17", "1.00", "", ""),  # 4
        (missing, "1.00", "", ""),  # 5
        (authorized.id, "1.00", "", ""),  # 6
        (usd[1].id, "", "", ""),  # 7
        (usd[1].id, "1,50", "", ""),  # 8
        (usd[1].id, "-2.00", "", ""),  # 9
        (usd[1].id, "0", "", ""),  # 10
        (jpy.id, "1.5", "", ""),  # 11
        (usd[2].id, "6.00", "", ""),  # 12: 6.00 of 10.00
        (usd[2].id, "4.01", "", ""),  # 13: together 10.01
        (usd[3].id, "1.00", "x" * 256, ""),  # 14
        (usd[3].id, "1.00", "", "k" * 81),  # 15
        (usd[3].id, "1.00", "", "k1"),  # 16: k1 is row 2's
        (usd[3].id, "1.00", "", "used-key"),  # 17: an earlier file's
        (usd[4].id, "2.01", "", ""),  # 18: 8.00 in flight, 2.00 remains
        (usd[3].id, "1.00"),  # 19: a cell short
    ]

    refund_file = refund_file_upload(name="bad.csv", content=csv_bytes(rows), user=uploader)

    assert refund_file.outcome == RefundFile.Outcome.REJECTED
    assert report_of(refund_file) == {
        ("3", "payment_id", "PAYMENT_ID_REQUIRED"),
        ("4", "payment_id", "INVALID_PAYMENT_ID"),
        ("5", "payment_id", "PAYMENT_NOT_FOUND"),
        ("6", "payment_id", "PAYMENT_NOT_REFUNDABLE"),
        ("7", "amount", "AMOUNT_REQUIRED"),
        ("8", "amount", "INVALID_AMOUNT"),
        ("9", "amount", "AMOUNT_NOT_POSITIVE"),
        ("10", "amount", "AMOUNT_NOT_POSITIVE"),
        ("11", "amount", "AMOUNT_PRECISION"),
        ("13", "amount", "REFUND_EXCEEDS_AVAILABLE"),
        ("14", "reason", "REASON_TOO_LONG"),
        ("15", "idempotency_key", "KEY_TOO_LONG"),
        ("16", "idempotency_key", "DUPLICATE_KEY_IN_FILE"),
        ("17", "idempotency_key", "KEY_ALREADY_USED"),
        ("18", "amount", "REFUND_EXCEEDS_AVAILABLE"),
        ("19", "", "CELL_COUNT"),
    }
    assert (refund_file.rows, refund_file.errors) == (18, 16)
    assert refund_file.total_by_currency == {}
    assert not Refund.objects.filter(refund_file=refund_file).exists()
    assert Refund.objects.count() == 2  # the earlier file's and the one in flight
    assert GatewayOperation.objects.filter(kind=OperationKind.REFUND).count() == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"payment_id,amount\npay_x,1\n", {("1", "reason", "MISSING_COLUMN")}),
        (b"payment_id,amount,reason,note\n", {("1", "note", "UNKNOWN_COLUMN")}),
        (b"payment_id,amount,reason,amount\n", {("1", "amount", "DUPLICATE_COLUMN")}),
        (b"payment_id,amount,reason\n\n", {("1", "", "NO_ROWS")}),
        (
            b"",
            {
                ("1", "reason", "MISSING_COLUMN"),
                ("1", "amount", "MISSING_COLUMN"),
                ("1", "payment_id", "MISSING_COLUMN"),
            },
        ),
        (b"payment_id,amount,reason\npay_x,1,caf\xe9\n", {("2", "", "NOT_UTF8")}),
    ],
    ids=["missing column", "unknown column", "column twice", "no rows", "empty", "not utf-8"],
)
def test_a_file_of_the_wrong_shape_is_rejected_with_its_reason(uploader, content, expected):
    refund_file = refund_file_upload(name="odd.csv", content=content, user=uploader)

    assert refund_file.outcome == RefundFile.Outcome.REJECTED
    assert report_of(refund_file) == expected


def test_a_spreadsheet_export_with_a_bom_crlf_and_blank_lines_is_read(merchant, uploader):
    (payment,) = captured_payments(merchant, 1)
    content = f"\ufeffPayment_ID, Amount ,reason\r\n{payment.id},2.5,\r\n\r\n,,\r\n".encode()

    refund_file = refund_file_upload(name="excel.csv", content=content, user=uploader)

    assert refund_file.outcome == RefundFile.Outcome.ACCEPTED, refund_file.error_report
    assert Refund.objects.get(refund_file=refund_file).amount == Decimal("2.50")


def test_the_same_accepted_content_is_refused_a_second_time(merchant, uploader):
    payments = captured_payments(merchant, 2)
    content = csv_bytes([(p.id, "1.00", "", "") for p in payments])
    first = refund_file_upload(name="a.csv", content=content, user=uploader)

    with pytest.raises(RefundFileRefused) as refused:
        refund_file_upload(name="a-again.csv", content=content, user=uploader)

    assert refused.value.code == "REFUND_FILE_DUPLICATE"
    assert f"#{first.pk}" in refused.value.message
    assert RefundFile.objects.count() == 1
    assert Refund.objects.count() == 2


def test_the_same_rows_saved_again_by_a_spreadsheet_are_refused(merchant, uploader):
    payments = captured_payments(merchant, 2)
    refund_file_upload(name="a.csv", content=csv_bytes([(p.id, "1.00", "damaged", "") for p in payments]), user=uploader)
    resaved = "\ufeffpayment_id,amount,reason\r\n" + "".join(f'"{p.id}",1,"damaged"\r\n' for p in payments)

    with pytest.raises(RefundFileRefused) as refused:
        refund_file_upload(name="a (1).csv", content=resaved.encode("utf-8"), user=uploader)

    assert refused.value.code == "REFUND_FILE_DUPLICATE"
    assert Refund.objects.count() == 2


def test_rejected_content_may_be_uploaded_again(merchant, uploader):
    (payment,) = captured_payments(merchant, 1)
    content = csv_bytes([(payment.id, "11.00", "", "")])
    assert refund_file_upload(name="a.csv", content=content, user=uploader).outcome == RefundFile.Outcome.REJECTED

    again = refund_file_upload(name="a.csv", content=content, user=uploader)

    assert again.outcome == RefundFile.Outcome.REJECTED
    assert RefundFile.objects.count() == 2


def test_a_file_over_the_size_limit_is_refused_unread(uploader, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_FILE_BYTES", 100)

    with pytest.raises(RefundFileRefused) as refused:
        refund_file_upload(name="big.csv", content=b"payment_id,amount,reason\n" + b"x" * 100, user=uploader)

    assert refused.value.code == "REFUND_FILE_TOO_LARGE"
    assert not RefundFile.objects.exists()


def test_the_report_never_starts_a_cell_with_a_formula(merchant, uploader):
    refund_file = refund_file_upload(name="f.csv", content=b"payment_id,amount,reason,=cmd()\n", user=uploader)

    lines = list(csv.reader(io.StringIO(refund_file.error_report)))
    assert lines[1][:3] == ["1", "'=cmd()", "UNKNOWN_COLUMN"]


@pytest.mark.django_db(transaction=True)
def test_payments_are_locked_in_id_order_whatever_the_order_of_the_rows(merchant, uploader):
    """The file names the higher id first; the upload still locks the lower one first, then waits
    on the higher one that another transaction holds. Two uploads (or an upload and a refund)
    therefore never wait on each other in a cycle."""
    low, high = sorted(captured_payments(merchant, 2), key=lambda p: p.id)
    content = csv_bytes([(high.id, "1.00", "", ""), (low.id, "1.00", "", "")])
    holding, release, outcome = threading.Event(), threading.Event(), {}

    def hold_high():
        try:
            with transaction.atomic():
                payment_lock(high.id)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def upload():
        try:
            outcome["file"] = refund_file_upload(name="order.csv", content=content, user=uploader)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_high)
    holder.start()
    assert holding.wait(5)
    uploader_thread = threading.Thread(target=upload)
    uploader_thread.start()
    try:
        low_taken = False
        for _ in range(100):  # until the upload holds the lower id (it waits on the higher one)
            try:
                with transaction.atomic():
                    Payment.objects.select_for_update(nowait=True).get(pk=low.id)
            except DatabaseError:
                low_taken = True
                break
            time.sleep(0.05)
        assert low_taken, "the upload never locked the lower payment id"
        assert uploader_thread.is_alive()  # waiting on the higher id
    finally:
        release.set()
        holder.join(10)
        uploader_thread.join(30)

    assert outcome["file"].outcome == RefundFile.Outcome.ACCEPTED
    assert Refund.objects.filter(refund_file=outcome["file"]).count() == 2


def test_without_postgresql_the_refunds_are_written_with_bulk_create(merchant, uploader, monkeypatch):
    """SQLite, the embedded default for development, has no COPY: the same rows go through bulk_create."""
    payments = captured_payments(merchant, 3)
    monkeypatch.setattr(connection, "vendor", "sqlite")

    refund_file = refund_file_upload(
        name="dev.csv", content=csv_bytes([(p.id, "1.00", "", f"k{i}") for i, p in enumerate(payments)]), user=uploader
    )

    monkeypatch.undo()
    refunds = Refund.objects.filter(refund_file=refund_file)
    assert refund_file.outcome == RefundFile.Outcome.ACCEPTED and refunds.count() == 3
    assert set(refunds.values_list("operation__idempotency_key", flat=True)) == set(
        refunds.values_list("id", flat=True)
    )
    assert RefundStatusChange.objects.filter(refund__in=refunds).count() == 3


def test_a_file_with_a_card_number_in_a_reason_is_refused_and_nothing_is_recorded(merchant, uploader):
    content = b"payment_id,amount,reason,idempotency_key\npay_x,1.00,ok,4111111111111111\npay_y,2.00,card 4111 1111 1111 1111,k2\n"

    with pytest.raises(RefundFileRefused) as refused:
        refund_file_upload(name="cards.csv", content=content, user=uploader)

    assert refused.value.code == "CARD_NUMBER_NOT_ACCEPTED"
    assert "Rows 3 " in refused.value.message and "4111" not in refused.value.message
    assert not RefundFile.objects.exists()


def test_a_numeric_idempotency_key_is_not_taken_for_a_card_number():
    from refunds.bulk import card_number_rows

    assert card_number_rows(b"payment_id,amount,reason,idempotency_key\npay_x,1.00,ok,4111111111111111\n") == []
    assert card_number_rows(b"payment_id,amount,reason\npay_x,1.00,4111111111111111\n") == [2]
