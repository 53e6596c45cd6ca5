"""The simulator's test values and the declines they give.

Outcomes of `authorize` are chosen by the last four characters of `fromAccount` (docs/03-simulator.md):

| ending | outcome |
|--------|---------|
| 0002   | declined, `DECLINED` |
| 0051   | declined, `INSUFFICIENT_FUNDS` |
| 0054   | declined, `CARD_EXPIRED` |
| 0059   | declined, `FRAUD_SUSPECTED` |
| 0065   | declined, `LIMIT_EXCEEDED` |
| 0408   | the charge goes through at the gateway but the answer times out (GatewayTimeout) |
| 0202   | accepted as pending; a signed webhook completes it a little later |
| 0503   | the gateway answers 503: GatewayUnavailable, nothing recorded |
| 0504   | the connection times out before the request is sent: GatewayUnavailable, nothing recorded |
| other  | succeeds (captured, or authorized with capture=False) |

Outcomes of `refund` are chosen by the last two digits of the refund's amount in minor units:

| ending | outcome |
|--------|---------|
| 02     | declined, `DECLINED` (10.02 USD) |
| 08     | the refund goes through at the gateway but the answer times out (GatewayTimeout) |
| 20     | accepted as pending; a signed webhook completes it a little later |
| other  | succeeds while it is at most what remains captured |

These values rehearse one payment's failure: 0503, 0504 and 0408 do not count towards the circuit
breaker (a merchant's tests must not take the gateway out for everyone). The outage switch is what
takes a whole simulator down, and its failures count like a real gateway's.
"""

from ..base import ErrorCode

DECLINES = {
    "0002": ErrorCode.DECLINED,
    "0051": ErrorCode.INSUFFICIENT_FUNDS,
    "0054": ErrorCode.CARD_EXPIRED,
    "0059": ErrorCode.FRAUD_SUSPECTED,
    "0065": ErrorCode.LIMIT_EXCEEDED,
}
TIMEOUT_SUFFIX = "0408"
ASYNC_SUFFIX = "0202"
UNAVAILABLE_SUFFIX = "0503"
CONNECT_TIMEOUT_SUFFIX = "0504"

# Refunds, by the last two digits of the amount in minor units.
REFUND_DECLINED = 2
REFUND_TIMEOUT = 8
REFUND_ASYNC = 20

MESSAGES = {
    ErrorCode.DECLINED: "The issuer declined the payment.",
    ErrorCode.INSUFFICIENT_FUNDS: "The account has insufficient funds.",
    ErrorCode.CARD_EXPIRED: "The card has expired.",
    ErrorCode.FRAUD_SUSPECTED: "The issuer suspects fraud.",
    ErrorCode.LIMIT_EXCEEDED: "The account's limit is exceeded.",
}



def refund_test_value(amount, currency: str) -> int:
    """The last two digits of a refund's amount in minor units (10.08 USD: 8; 1208 JPY: 8)."""
    from pgi.money import currency_exponent

    return int(amount.scaleb(currency_exponent(currency))) % 100
