"""Amounts as Stripe writes them: integers in minor units, with Stripe's own exponents and steps."""

from decimal import Decimal

from pgi.money import UnknownCurrency, currency_exponent, fits_currency, quantize

# Where Stripe's minor unit differs from ISO 4217's (docs.stripe.com/currencies#special-cases),
# this table wins:
STRIPE_EXPONENT_OVERRIDES = {
    "ISK": 2,  # ISO 0; Stripe keeps ISK two-decimal in the API (100 = 1 króna)
    "MGA": 0,  # ISO 2; zero-decimal at Stripe
}
# Stripe accepts only multiples of this many minor units: ISK in whole krónur, and the
# three-decimal currencies with a last digit of 0 ("round amounts to the nearest ten"). An amount
# that does not fit is refused here, before any call, rather than rounded: PGI never changes an
# amount on the merchant's behalf. (HUF and TWD are two-decimal for charges; their whole-unit rule
# concerns payouts only.)
MINOR_UNIT_STEP = {"ISK": 100, "BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10}


class AmountNotAccepted(ValueError):
    """The amount cannot be written as Stripe wants it in that currency."""


def stripe_exponent(currency: str) -> int:
    currency = currency.upper()
    if currency in STRIPE_EXPONENT_OVERRIDES:
        return STRIPE_EXPONENT_OVERRIDES[currency]
    return currency_exponent(currency)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The integer Stripe expects for `amount` (Decimal, never float). Raises AmountNotAccepted."""
    currency = currency.upper()
    try:
        exponent = stripe_exponent(currency)
    except UnknownCurrency as exc:
        raise AmountNotAccepted(f"{currency} is not a currency Stripe can charge.") from exc
    minor = amount.scaleb(exponent)
    if not minor.is_finite() or minor != minor.to_integral_value() or minor <= 0:
        raise AmountNotAccepted(f"{amount} {currency} cannot be sent to Stripe (it takes {exponent} decimals).")
    step = MINOR_UNIT_STEP.get(currency, 1)
    if int(minor) % step:
        smallest = Decimal(step).scaleb(-exponent)
        raise AmountNotAccepted(f"Stripe accepts {currency} amounts only in steps of {smallest}; got {amount}.")
    return int(minor)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Stripe's integer as a Decimal amount, written with the ISO 4217 decimals when exact."""
    currency = currency.upper()
    value = Decimal(int(minor)).scaleb(-stripe_exponent(currency))
    return quantize(value, currency) if fits_currency(value, currency) else value
