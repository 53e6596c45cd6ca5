"""Fees: half-even to the currency's digits, the SQL the batch runs equal to the Python reference."""

import sqlite3
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from settlements.fees import Fee, fee_of, fee_params, fee_sql, ten_thousandths


@pytest.mark.parametrize(
    "amount, bps, currency, fee",
    [
        ("10.25", 1000, "USD", "1.02"),  # 1.025: half, to the even cent
        ("10.35", 1000, "USD", "1.04"),  # 1.035: half, to the even cent (up this time)
        ("10.26", 1000, "USD", "1.03"),
        ("1250", 200, "JPY", "25"),
        ("1255", 200, "JPY", "25"),  # 25.1
        ("1275", 200, "JPY", "26"),  # 25.5: half, to the even yen
        ("1.0005", 10000, "KWD", "1.000"),  # 1.0005: half, to the even fils
    ],
)
def test_the_percentage_rounds_half_to_even(amount, bps, currency, fee):
    assert fee_of(Decimal(amount), Fee(basis_points=bps, fixed=Decimal(0), minimum=None), currency) == Decimal(fee)


def test_the_minimum_applies_when_the_fee_is_below_it():
    fee = Fee(basis_points=100, fixed=Decimal("0.10"), minimum=Decimal("0.50"))
    assert fee_of(Decimal("10.00"), fee, "USD") == Decimal("0.50")
    assert fee_of(Decimal("100.00"), fee, "USD") == Decimal("1.10")


def sql_fee(amount: Decimal, fee: Fee, currency: str) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {fee_sql('%(amount)s::numeric(18, 4)')}", {"amount": amount, **fee_params(fee, currency)}
        )
        return cursor.fetchone()[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "CLF"]),
    amount=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999999999999"), places=4),
    bps=st.integers(0, 10000),
    fixed=st.sampled_from(["0", "0.25", "1"]),
    minimum=st.sampled_from([None, "0", "0.5", "3"]),
)
@example(currency="USD", amount=Decimal("10.25"), bps=1000, fixed="0", minimum=None)
@example(currency="USD", amount=Decimal("10.35"), bps=1000, fixed="0", minimum=None)
@pytest.mark.django_db
def test_the_sql_fee_is_the_python_fee(currency, amount, bps, fixed, minimum):
    fee = Fee(basis_points=bps, fixed=Decimal(fixed), minimum=None if minimum is None else Decimal(minimum))

    assert sql_fee(amount, fee, currency) == fee_of(amount, fee, currency)


SQLITE_FEE = fee_sql(":amount", ":bps", ":divisor", ":unit", ":fixed", ":minimum", integers=True)


@settings(max_examples=500, deadline=None)
@given(
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "CLF"]),
    amount=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999999999999"), places=4),
    bps=st.integers(0, 10000),
    fixed=st.sampled_from(["0", "0.25", "1"]),
    minimum=st.sampled_from([None, "0", "0.5", "3"]),
)
@example(currency="USD", amount=Decimal("10.25"), bps=1000, fixed="0", minimum=None)
@example(currency="USD", amount=Decimal("10.35"), bps=1000, fixed="0", minimum=None)
@example(currency="JPY", amount=Decimal("1225"), bps=200, fixed="0", minimum=None)
@example(currency="KWD", amount=Decimal("10.005"), bps=1000, fixed="0", minimum=None)
@example(currency="USD", amount=Decimal("99999999999999.9999"), bps=10000, fixed="1", minimum=None)
def test_the_integer_fee_sqlite_runs_is_the_python_fee(currency, amount, bps, fixed, minimum):
    """SQLite (`make run`): the fee in integer ten-thousandths, no float anywhere, even at the
    largest amount a column holds (its products would pass 64 bits unsplit)."""
    fee = Fee(basis_points=bps, fixed=Decimal(fixed), minimum=None if minimum is None else Decimal(minimum))
    params = {**fee_params(fee, currency, integers=True), "amount": ten_thousandths(amount)}

    with sqlite3.connect(":memory:") as db:
        value, kind = db.execute(f"SELECT {SQLITE_FEE}, typeof({SQLITE_FEE})", params).fetchone()

    assert kind == "integer" and Decimal(value).scaleb(-4) == fee_of(amount, fee, currency)
