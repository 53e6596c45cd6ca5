"""Currency facts and exact decimal arithmetic for amounts.

ISO 4217 data (codes and minor-unit exponents) comes from the `iso4217` package; nothing here is a
hand-kept table. Amounts are `Decimal` everywhere: this module never builds one from a float.
"""

from decimal import Decimal

from iso4217 import Currency

# Payment amounts are stored with four decimal places, enough for every ISO 4217 exponent.
AMOUNT_MAX_DIGITS = 18
AMOUNT_DECIMAL_PLACES = 4


def is_storable_amount(amount: Decimal) -> bool:
    """True for a finite amount greater than zero that an amount column holds without rounding."""
    if not amount.is_finite() or amount <= 0:
        return False
    _, digits, exponent = amount.normalize().as_tuple()
    return len(digits) + exponent <= AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES and -exponent <= AMOUNT_DECIMAL_PLACES


class UnknownCurrency(ValueError):
    """The code is not an ISO 4217 currency that can carry a payment."""


def currency_exponent(code: str) -> int:
    """The number of minor-unit digits of an ISO 4217 currency (USD 2, JPY 0, KWD 3).

    Raises UnknownCurrency for codes that are not ISO 4217, or that have no minor unit defined
    (precious metals, testing and fund codes such as XAU and XXX): those cannot carry a payment.
    """
    try:
        currency = Currency(code)
    except ValueError as exc:
        raise UnknownCurrency(code) from exc
    if currency.exponent is None:
        raise UnknownCurrency(code)
    return currency.exponent


def is_payable_currency(code: str) -> bool:
    try:
        currency_exponent(code)
    except UnknownCurrency:
        return False
    return True


def decimal_places(amount: Decimal) -> int:
    """How many digits an amount has after the point, ignoring trailing zeros (50.00 -> 0)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fits_currency(amount: Decimal, code: str) -> bool:
    """True if the amount needs no more decimals than the currency allows."""
    return decimal_places(amount) <= currency_exponent(code)


def quantize(amount: Decimal, code: str) -> Decimal:
    """The amount written with exactly the currency's minor-unit digits (50 -> 50.00 USD).

    Only ever pads: callers check `fits_currency` first, so no digit is rounded away.
    """
    quantum = _QUANTA.get(code)
    if quantum is None:
        quantum = _QUANTA[code] = Decimal(1).scaleb(-currency_exponent(code))
    return amount.quantize(quantum)


_QUANTA: dict[str, Decimal] = {}  # quantize's: a page of 50 payments writes 150 amounts


def format_money(amount: Decimal, code: str) -> str:
    """For people: `50.00 USD`, `500 JPY`, `1.500 KWD`."""
    return f"{quantize(amount, code)} {code}"
