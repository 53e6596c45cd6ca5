from decimal import Decimal

import pytest

from pgi.money import (
    UnknownCurrency,
    currency_exponent,
    decimal_places,
    fits_currency,
    is_payable_currency,
    is_storable_amount,
    quantize,
)


@pytest.mark.parametrize(("code", "exponent"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_currency_exponent_comes_from_iso_4217(code, exponent):
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["XAU", "XXX", "usd", "Usd", "ABC", "", "USDX"])
def test_codes_that_cannot_carry_a_payment_are_unknown(code):
    with pytest.raises(UnknownCurrency):
        currency_exponent(code)
    assert is_payable_currency(code) is False


@pytest.mark.parametrize(
    ("amount", "places"),
    [("50", 0), ("50.00", 0), ("50.10", 1), ("0.001", 3), ("1.500", 1), ("1E+2", 0), ("0.30", 1), ("12.3456", 4)],
)
def test_decimal_places_ignores_trailing_zeros(amount, places):
    assert decimal_places(Decimal(amount)) == places


@pytest.mark.parametrize(
    ("amount", "code", "fits"),
    [
        ("50.00", "USD", True),
        ("50.001", "USD", False),
        ("50.010", "USD", True),
        ("500", "JPY", True),
        ("500.5", "JPY", False),
        ("500.0", "JPY", True),
        ("1.5", "KWD", True),
        ("1.505", "KWD", True),
        ("1.5055", "KWD", False),
    ],
)
def test_fits_currency_compares_significant_decimals_with_the_exponent(amount, code, fits):
    assert fits_currency(Decimal(amount), code) is fits


@pytest.mark.parametrize(
    ("amount", "code", "written"),
    [("50", "USD", "50.00"), ("50.0", "USD", "50.00"), ("500", "JPY", "500"), ("500.00", "JPY", "500"),
     ("1.5", "KWD", "1.500"), ("1E+2", "USD", "100.00"), ("0.30", "USD", "0.30")],
)
def test_quantize_writes_exactly_the_currency_digits(amount, code, written):
    result = quantize(Decimal(amount), code)

    assert str(result) == written
    assert result == Decimal(amount)


def test_quantize_of_the_largest_storable_amount_keeps_every_digit():
    amount = Decimal("99999999999999.999")

    assert str(quantize(amount, "KWD")) == "99999999999999.999"


@pytest.mark.parametrize(
    ("amount", "storable"),
    [
        ("0.0001", True),
        ("1", True),
        ("1E+2", True),
        ("99999999999999.9999", True),
        ("99999999999999.99990", True),
        ("0", False),
        ("-1", False),
        ("0.00001", False),
        ("100000000000000", False),
        ("NaN", False),
        ("Infinity", False),
        ("-Infinity", False),
    ],
)
def test_is_storable_amount_bounds_sign_and_digits(amount, storable):
    assert is_storable_amount(Decimal(amount)) is storable
