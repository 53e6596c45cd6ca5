"""The payment tables' indexes: each kept one serves a read or guards money; none repeats another.

Every index is written again by every INSERT and by every UPDATE of an indexed column, and a
payment is written twice on its way to Completed, so an index no read needs is paid for twice per
payment."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

TABLES = ("payments_payment", "payments_gatewayoperation", "payments_gatewayattempt")


def indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [list(TABLES)])
        return dict(cursor.fetchall())


def leading_columns(definition: str) -> tuple[str, ...]:
    columns = definition.split(" USING btree (", 1)[1].split(")", 1)[0]
    return tuple(part.split()[0].strip('"') for part in columns.split(","))


@pytest.mark.django_db
def test_no_plain_index_is_a_prefix_of_another_on_the_same_table():
    found = indexes()
    plain = {name: d for name, d in found.items() if "UNIQUE" not in d and " WHERE " not in d and "pattern_ops" not in d}
    for name, definition in plain.items():
        table = definition.split(" ON ", 1)[1].split()[0]
        columns = leading_columns(definition)
        for other, other_definition in found.items():
            if other == name or other_definition.split(" ON ", 1)[1].split()[0] != table:
                continue
            longer = leading_columns(other_definition)
            assert not (len(longer) > len(columns) and longer[: len(columns)] == columns and " WHERE " not in other_definition), (
                f"{name} {columns} repeats the start of {other} {longer}"
            )


@pytest.mark.django_db
def test_the_composite_indexes_and_the_guards_of_money_are_there():
    found = indexes()
    assert leading_columns(found["payment_merchant_created"]) == ("merchant_id", "created_at", "id")
    assert leading_columns(found["operation_payment_kind"]) == ("payment_id", "kind")
    assert leading_columns(found["gateway_attempt_payment"]) == ("payment_id", "created_at")
    # One authorization per payment, one capture or void in flight: unique, and kept by migration 0011.
    assert "UNIQUE" in found["operation_one_authorization"]
    assert "UNIQUE" in found["operation_one_follow_up_in_flight"]
    assert not any(name.startswith(("payments_payment_merchant_id_", "payments_gatewayoperation_payment_id_",
                                     "payments_gatewayattempt_payment_id_")) for name in found)


@pytest.mark.django_db(transaction=True)
def test_the_migration_that_drops_the_repeated_indexes_goes_back_and_forth(migrated_back):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("payments", "0010_staff_permissions_roles")])
    before = indexes()
    assert {"payments_payment_merchant_id_2ca42133", "payments_gatewayattempt_payment_id_68ed6847"} <= set(before)
    executor.loader.build_graph()
    executor.migrate([("payments", "0011_foreign_keys_indexed_by_composites")])
    after = indexes()
    assert set(before) - set(after) == {
        "payments_payment_merchant_id_2ca42133",
        "payments_gatewayoperation_payment_id_985e8ade",
        "payments_gatewayoperation_payment_id_985e8ade_like",
        "payments_gatewayattempt_payment_id_68ed6847",
        "payments_gatewayattempt_payment_id_68ed6847_like",
    }
    assert set(after) <= set(before)
