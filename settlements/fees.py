"""The fee of one captured payment, in Python (the reference) and as SQL (what the batch runs).

    fee = max(minimum, round_half_even(amount * basis_points / 10000, currency digits) + fixed)

Half-even ("banker's rounding"): a fee exactly half a minor unit away is rounded to the even unit,
so over many payments the roundings cancel instead of all going the merchant's or the bank's way.
PostgreSQL's ROUND(numeric) rounds half away from zero, so the SQL spells half-even out; the tests
hold the two to the same answer on random amounts.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pgi.money import currency_exponent


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
) -> str:
    """SQL for fee_of(amount) over the column expression `amount`. The fee's parts are SQL too:
    by default the named parameters of fee_params, else columns (one fee plan per row): basis
    points, divisor (10 ** (4 - digits)), unit (10 ** -digits), fixed, minimum.

    `scaled` is the percentage in minor units, exact: numeric division keeps at least 16 digits,
    and amounts have 4. Half-even: below half down, above half up, exactly half to the even unit.
    GREATEST skips a NULL minimum.
    """
    scaled = f"({amount} * {bps} / {divisor})"
    rounded = (
        f"(FLOOR({scaled}) + CASE WHEN {scaled} - FLOOR({scaled}) > 0.5 THEN 1"
        f" WHEN {scaled} - FLOOR({scaled}) < 0.5 THEN 0 ELSE MOD(FLOOR({scaled}), 2) END)"
    )
    return f"GREATEST({rounded} * {unit} + {fixed}, {minimum})"


def fee_params(fee: Fee, currency: str) -> dict:
    digits = currency_exponent(currency)
    return {
        "bps": fee.basis_points,
        "divisor": 10 ** (4 - digits),
        "unit": Decimal(1).scaleb(-digits),
        "fixed": fee.fixed,
        "minimum": fee.minimum,
    }
