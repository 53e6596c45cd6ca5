"""Prepared statements (PGI_DB_PREPARED_STATEMENTS): outside transactions only, and they survive a
migration that changes a column's type."""

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
