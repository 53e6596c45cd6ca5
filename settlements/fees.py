"""The fee of one captured payment, in Python (the reference) and as SQL (what the batch runs).

    fee = max(minimum, round_half_even(amount * basis_points / 10000, currency digits) + fixed)

Half-even ("banker's rounding"): a fee exactly half a minor unit away is rounded to the even unit,
so over many payments the roundings cancel instead of all going the merchant's or the bank's way.
PostgreSQL's ROUND(numeric) rounds half away from zero, so the SQL spells half-even out; the tests
hold the two to the same answer on random amounts.

SQLite (`make run`'s embedded default) has no exact decimal type: its arithmetic on amounts is
floating point. There the batch computes in integers, amounts in ten-thousandths (the amount
columns' four decimal places), and the fee SQL is integer arithmetic (`integers=True`).
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pgi.money import AMOUNT_DECIMAL_PLACES, currency_exponent


@dataclass(frozen=True)
class Fee:
    """A merchant's fee in one currency. `minimum` None: none."""

    basis_points: int
    fixed: Decimal
    minimum: Decimal | None

    @classmethod
    def none(cls) -> "Fee":
        return cls(basis_points=0, fixed=Decimal(0), minimum=None)


def fee_of(amount: Decimal, fee: Fee, currency: str) -> Decimal:
    """The fee of one payment of `amount`, with the currency's digits."""
    unit = Decimal(1).scaleb(-currency_exponent(currency))
    percentage = (amount * fee.basis_points / Decimal(10000)).quantize(unit, rounding=ROUND_HALF_EVEN)
    total = percentage + fee.fixed
    return max(total, fee.minimum) if fee.minimum is not None else total


def fee_sql(
    amount: str,
    bps: str = "%(bps)s",
    divisor: str = "%(divisor)s",
    unit: str = "%(unit)s",
    fixed: str = "%(fixed)s",
    minimum: str = "%(minimum)s",
    *,
    integers: bool = False,
) -> str:
    """SQL for fee_of(amount) over the column expression `amount`. The fee's parts are SQL too:
    by default the named parameters of fee_params, else columns (one fee plan per row): basis
    points, divisor, unit, fixed, minimum (fee_params says what each is).

    numeric (PostgreSQL): `scaled` is the percentage in minor units, exact: numeric division keeps
    at least 16 digits, and amounts have 4. Half-even: below half down, above half up, exactly half
    to the even unit. GREATEST skips a NULL minimum.

    `integers` (SQLite): `amount`, fixed, minimum and the result are integer ten-thousandths. The
    percentage in minor units is amount × bps / divisor with divisor 10 ** (8 - digits), split so
    that no product leaves 64 bits: amount = whole × divisor + part, so the quotient is
    whole × bps + part × bps / divisor and the remainder that of part × bps (below 10 ** 12).
    No `%` operator: the query goes through Python's %-formatting.
    """
    if integers:
        whole, part = f"({amount} / {divisor})", f"({amount} - {amount} / {divisor} * {divisor})"
        quotient = f"({whole} * {bps} + {part} * {bps} / {divisor})"
        twice_rest = f"(2 * ({part} * {bps} - {part} * {bps} / {divisor} * {divisor}))"
        rounded = (
            f"({quotient} + CASE WHEN {twice_rest} > {divisor} THEN 1 WHEN {twice_rest} < {divisor} THEN 0"
            f" ELSE {quotient} - {quotient} / 2 * 2 END)"
        )
        return f"MAX({rounded} * {unit} + {fixed}, {minimum})"
    scaled = f"({amount} * {bps} / {divisor})"
    rounded = (
        f"(FLOOR({scaled}) + CASE WHEN {scaled} - FLOOR({scaled}) > 0.5 THEN 1"
        f" WHEN {scaled} - FLOOR({scaled}) < 0.5 THEN 0 ELSE MOD(FLOOR({scaled}), 2) END)"
    )
    return f"GREATEST({rounded} * {unit} + {fixed}, {minimum})"


def ten_thousandths(amount: Decimal) -> int:
    """An amount as an integer count of ten-thousandths (amount columns have four decimal places)."""
    return int(amount.scaleb(AMOUNT_DECIMAL_PLACES).to_integral_exact())


def fee_params(fee: Fee, currency: str, *, integers: bool = False) -> dict:
    """The fee's parts for fee_sql. numeric: divisor 10 ** (4 - digits), unit 10 ** -digits, fixed
    and minimum as they are (None: no minimum). `integers`: divisor 10 ** (8 - digits), unit
    10 ** (4 - digits), fixed and minimum in ten-thousandths, no minimum as 0 (the fee of a plan,
    bps and fixed never below zero, is at least 0 anyway; SQLite's MAX of a NULL is NULL)."""
    digits = currency_exponent(currency)
    if integers:
        return {
            "bps": fee.basis_points,
            "divisor": 10 ** (2 * AMOUNT_DECIMAL_PLACES - digits),
            "unit": 10 ** (AMOUNT_DECIMAL_PLACES - digits),
            "fixed": ten_thousandths(fee.fixed),
            "minimum": ten_thousandths(fee.minimum) if fee.minimum is not None else 0,
        }
    return {
        "bps": fee.basis_points,
        "divisor": 10 ** (4 - digits),
        "unit": Decimal(1).scaleb(-digits),
        "fixed": fee.fixed,
        "minimum": fee.minimum,
    }
