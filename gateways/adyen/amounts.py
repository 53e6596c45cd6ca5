"""Amounts and accounts as Adyen takes them: minor units with Adyen's own exponents, and the
stored payment method PGI charges."""

from decimal import Decimal, InvalidOperation
from typing import Any

import schwifty

from pgi.money import UnknownCurrency, currency_exponent, fits_currency, quantize

from ..base import ErrorCode

# Adyen's minor units where they differ from ISO 4217 (docs.adyen.com, "Currency codes and minor
# units": "For CLP, CVE, IDR, and ISK the standard has a different number of decimals"). Every other
# currency uses the ISO 4217 exponent from pgi.money.
ADYEN_EXPONENTS = {"CLP": 2, "CVE": 0, "IDR": 0, "ISK": 2}


class NotPayable(Exception):
    """The request cannot be put to Adyen at all (amount not in Adyen's minor units, bad account)."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def adyen_exponent(currency: str) -> int:
    """Adyen's number of minor-unit digits for a currency. Raises UnknownCurrency."""
    return ADYEN_EXPONENTS.get(currency, currency_exponent(currency))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The amount as Adyen's integer `value`. Raises NotPayable when Adyen cannot carry it
    (IDR 10.50: Adyen takes IDR without decimals) and never rounds."""
    try:
        scaled = amount.scaleb(adyen_exponent(currency))
    except UnknownCurrency as exc:
        raise NotPayable(ErrorCode.INVALID_REQUEST, f"Adyen does not take currency {currency}.") from exc
    if scaled != scaled.to_integral_value():
        raise NotPayable(
            ErrorCode.INVALID_REQUEST,
            f"{amount} {currency} has more decimals than Adyen accepts for {currency} "
            f"({adyen_exponent(currency)}).",
        )
    return int(scaled)


# Adyen's `value` is a 64-bit integer of minor units; anything longer is not an Adyen amount.
MAX_MINOR_UNITS = 10**18


def from_minor_units(value: Any, currency: str) -> Decimal | None:
    """Adyen's integer `value` as a Decimal amount, written with the ISO 4217 digits when that
    loses nothing. None when the value or the currency is not usable."""
    try:
        amount = Decimal(int(value)).scaleb(-adyen_exponent(currency))
        return quantize(amount, currency) if fits_currency(amount, currency) else amount
    except (TypeError, ValueError, UnknownCurrency, InvalidOperation):
        return None


def parse_from_account(from_account: str) -> tuple[str, str]:
    """`<shopperReference>:<storedPaymentMethodId>` -> (shopperReference, storedPaymentMethodId),
    split at the last colon. Raises NotPayable for anything else, and for a bare IBAN: PGI does
    not send account numbers to Adyen; store the SEPA mandate or card with Adyen and send its id."""
    shopper, sep, stored = from_account.strip().rpartition(":")
    if sep and shopper.strip() and stored.strip():
        return shopper.strip(), stored.strip()
    try:
        schwifty.IBAN(from_account)
    except (ValueError, schwifty.exceptions.SchwiftyException):
        pass
    else:
        raise NotPayable(
            ErrorCode.INVALID_ACCOUNT,
            "Adyen payments take a stored payment method, not an IBAN: send "
            "'<shopperReference>:<storedPaymentMethodId>'.",
        )
    raise NotPayable(
        ErrorCode.INVALID_ACCOUNT, "fromAccount must be '<shopperReference>:<storedPaymentMethodId>' for Adyen."
    )
