"""Prepared statements (PGI_DB_PREPARED_STATEMENTS): outside transactions, and inside them only for
statements whose result types are fixed (pgi.compiled's combined writes); all survive a migration
that changes a column's type."""

import pytest
from django.db import NotSupportedError, connection, connections, transaction

from payments.selectors import payment_get
from pgi.prepared_statements import prepare_outside_transactions
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def widen_reference():
    """ALTER the payments' reference column from another connection, as a migration would; put back after."""
    other = connections.create_connection("default")

    def alter(length: int) -> None:
        with other.cursor() as cursor:
            cursor.execute(f"ALTER TABLE payments_payment ALTER COLUMN reference TYPE varchar({length})")

    yield lambda: alter(65)
    alter(64)
    other.close()


def prepared_statement_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


def read_often(principal, payment_id, times=6):
    for _ in range(times):
        assert payment_get(principal=principal, payment_id=payment_id).pk == payment_id


def test_statements_pgi_repeats_are_prepared(merchant, principal):
    payment = PaymentFactory(merchant=merchant)
    read_often(principal, payment.pk)

    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5
    assert prepared_statement_count() >= 1


def test_a_statement_outside_a_transaction_is_prepared_again_after_its_columns_changed_type(
    merchant, principal, widen_reference
):
    payment = PaymentFactory(merchant=merchant, reference="r-1")
    read_often(principal, payment.pk)
    widen_reference()

    assert prepare_outside_transactions in connection.execute_wrappers
    assert payment_get(principal=principal, payment_id=payment.pk).reference == "r-1"
    assert payment_get(principal=principal, payment_id=payment.pk).reference == "r-1"


def test_without_the_wrapper_the_connection_keeps_failing(merchant, principal, widen_reference):
    payment = PaymentFactory(merchant=merchant)
    read_often(principal, payment.pk)
    widen_reference()
    connection.execute_wrappers.remove(prepare_outside_transactions)
    try:
        for _ in range(2):
            with pytest.raises(NotSupportedError, match="cached plan must not change result type"):
                payment_get(principal=principal, payment_id=payment.pk)
    finally:
        connection.execute_wrappers.append(prepare_outside_transactions)

    assert payment_get(principal=principal, payment_id=payment.pk).pk == payment.pk  # and it heals


def test_statements_in_a_transaction_are_never_prepared_so_a_changed_column_costs_nothing(
    merchant, principal, widen_reference
):
    payment = PaymentFactory(merchant=merchant)
    before = prepared_statement_count()
    with transaction.atomic():
        read_often(principal, payment.pk, times=8)
    assert prepared_statement_count() == before
    widen_reference()

    with transaction.atomic():
        assert payment_get(principal=principal, payment_id=payment.pk).pk == payment.pk


def write_together(merchant, reference: str):
    """A payment, its history line (a key made by the database, returned) and an update (a 1 returned),
    as one statement of pgi.compiled.writes_together, inside a transaction."""
    from django.utils import timezone

    from payments.models import Payment, PaymentStatusChange
    from pgi.compiled import insert_rows, update_row, writes_together

    with transaction.atomic(), writes_together():
        payment = Payment(merchant=merchant, amount="1.00", currency="USD", from_account="acc", status="Pending",
                          status_changed_at=timezone.now(), reference=reference)
        insert_rows([payment])
        (line,) = insert_rows([PaymentStatusChange(payment=payment, from_status="", to_status="Pending",
                                                   source="api", reason="r")])
        merchant.name = f"renamed {reference}"
        update_row(merchant, ["name"])
    assert line.pk is not None
    return line


def combined_prepared() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH w0 AS (%%'")
        return cursor.fetchone()[0]


def test_combined_writes_are_prepared_in_a_transaction_and_survive_a_changed_key_type(merchant):
    for n in range(6):
        write_together(merchant, f"r-{n}")
    assert combined_prepared() == 1

    # A migration that changes the type of a key the statement returns (and of a column it writes):
    # the statement's result stays (integer, bigint), and PostgreSQL plans it again by itself.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("ALTER TABLE payments_paymentstatuschange ALTER COLUMN id TYPE integer")
            cursor.execute("ALTER TABLE payments_payment ALTER COLUMN reference TYPE varchar(65)")
        line = write_together(merchant, "after the migration")
        assert line.pk is not None and combined_prepared() == 1
    finally:
        with other.cursor() as cursor:
            cursor.execute("ALTER TABLE payments_paymentstatuschange ALTER COLUMN id TYPE bigint")
            cursor.execute("ALTER TABLE payments_payment ALTER COLUMN reference TYPE varchar(64)")
        other.close()
