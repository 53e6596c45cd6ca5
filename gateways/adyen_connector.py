"""The Adyen connector: Checkout API payments and modifications through the official `Adyen` SDK,
Adyen's standard (HMAC-signed) notifications, and the daily Payments Accounting Report.

What PGI sends (docs/06-gateway-adyen.md has the long form):

- `fromAccount` is `<shopperReference>:<storedPaymentMethodId>`: a card the shopper stored with
  Adyen, charged merchant-initiated (`shopperInteraction` ContAuth, `recurringProcessingModel`
  UnscheduledCardOnFile). PGI talks server to server: nothing here can show a 3-D Secure page, so a
  payment Adyen wants to authenticate is declined with AUTHENTICATION_REQUIRED.
- `reference` is PGI's payment id (the refund id for a refund) and every POST carries an
  `Idempotency-Key` from `idempotency_key()`: Adyen answers a repeated key with its first answer.
- Amounts are in Adyen's minor units, which follow ISO 4217 except for the currencies in
  ADYEN_EXPONENTS (Adyen's currency table marks them "differs from standard").

Failures follow gateways/base.py: nothing sent or refused unprocessed (connection refused, connect
timeout, 401/403, 429, 503 "our servers are unavailable") is GatewayUnavailable; an answer that may
have followed processing and never arrived whole (read timeout, connection dropped after sending,
500/502 "an unrecoverable error occurred while trying to perform the request", 504, Adyen's "704
request already processed or in progress") is GatewayTimeout. Adyen's own advice for those is to
retry with the same idempotency key, which is what recovery does; failing over to another gateway
could charge twice.
"""

import base64
import binascii
import csv
import datetime
import hmac
import io
import json
import logging
import ssl
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping, Sequence

import Adyen
import requests
import schwifty
import urllib3.exceptions
from Adyen.exceptions import (
    AdyenAPIAuthenticationError,
    AdyenAPIInvalidPermission,
    AdyenAPIResponseError,
    AdyenAPIUnprocessableEntity,
    AdyenAPIValidationError,
    AdyenError,
)
from django.core.exceptions import ImproperlyConfigured

from pgi.money import UnknownCurrency, currency_exponent, fits_currency, quantize

from .base import (
    CaptureRequest,
    Connector,
    ErrorCode,
    GatewayError,
    GatewayResult,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidNotification,
    InvalidSignature,
    Operation,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    ReportLine,
    VoidRequest,
    WebhookEvent,
    WebhookNotConfigured,
    WebhookReply,
    idempotency_key,
)

logger = logging.getLogger(__name__)

# Adyen's minor units where they differ from ISO 4217 (docs.adyen.com, "Currency codes and minor
# units": "For CLP, CVE, IDR, and ISK the standard has a different number of decimals"). Every other
# currency uses the ISO 4217 exponent from pgi.money.
ADYEN_EXPONENTS = {"CLP": 2, "CVE": 0, "IDR": 0, "ISK": 2}

# The metadata key that records the capture mode of a payment, for people reading it in Adyen's
# Customer Area. Adyen echoes it in additionalData, which its HMAC does not sign: PGI never decides
# on it (an AUTHORISATION's capture follows PGI's own record of the payment).
CAPTURE_METADATA_KEY = "pgiCapture"

# refusalReasonCode -> (normalized code, Adyen's refusalReason text), from Adyen's refusal reasons
# page. The text is also what an AUTHORISATION notification carries in `reason` when it failed.
REFUSAL_REASONS: dict[str, tuple[ErrorCode, str]] = {
    "2": (ErrorCode.DECLINED, "Refused"),
    "3": (ErrorCode.DECLINED, "Referral"),
    "4": (ErrorCode.GATEWAY_ERROR, "Acquirer Error"),
    "5": (ErrorCode.INVALID_ACCOUNT, "Blocked Card"),
    "6": (ErrorCode.CARD_EXPIRED, "Expired Card"),
    "7": (ErrorCode.INVALID_REQUEST, "Invalid Amount"),
    "8": (ErrorCode.INVALID_ACCOUNT, "Invalid Card Number"),
    "9": (ErrorCode.GATEWAY_ERROR, "Issuer Unavailable"),
    "10": (ErrorCode.DECLINED, "Not supported"),
    "11": (ErrorCode.AUTHENTICATION_REQUIRED, "3D Not Authenticated"),
    "12": (ErrorCode.INSUFFICIENT_FUNDS, "Not enough balance"),
    "14": (ErrorCode.FRAUD_SUSPECTED, "Acquirer Fraud"),
    "15": (ErrorCode.DECLINED, "Cancelled"),
    "16": (ErrorCode.DECLINED, "Shopper Cancelled"),
    "17": (ErrorCode.DECLINED, "Invalid Pin"),
    "18": (ErrorCode.DECLINED, "Pin tries exceeded"),
    "19": (ErrorCode.DECLINED, "Pin validation not possible"),
    "20": (ErrorCode.FRAUD_SUSPECTED, "FRAUD"),
    "21": (ErrorCode.GATEWAY_ERROR, "Not Submitted"),
    "22": (ErrorCode.FRAUD_SUSPECTED, "FRAUD-CANCELLED"),
    "23": (ErrorCode.DECLINED, "Transaction Not Permitted"),
    "24": (ErrorCode.DECLINED, "CVC Declined"),
    "25": (ErrorCode.DECLINED, "Restricted Card"),
    # The shopper withdrew the permission to charge the stored card: do not use the token again.
    "26": (ErrorCode.INVALID_ACCOUNT, "Revocation Of Auth"),
    "27": (ErrorCode.DECLINED, "Declined Non Generic"),
    "28": (ErrorCode.LIMIT_EXCEEDED, "Withdrawal amount exceeded"),
    "29": (ErrorCode.LIMIT_EXCEEDED, "Withdrawal count exceeded"),
    "31": (ErrorCode.FRAUD_SUSPECTED, "Issuer Suspected Fraud"),
    "32": (ErrorCode.DECLINED, "AVS Declined"),
    "33": (ErrorCode.AUTHENTICATION_REQUIRED, "Card requires online pin"),
    "34": (ErrorCode.INVALID_ACCOUNT, "No checking account available on Card"),
    "35": (ErrorCode.INVALID_ACCOUNT, "No savings account available on Card"),
    "36": (ErrorCode.AUTHENTICATION_REQUIRED, "Mobile pin required"),
    "37": (ErrorCode.DECLINED, "Contactless fallback"),
    "38": (ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required"),
    "39": (ErrorCode.AUTHENTICATION_REQUIRED, "RReq not received from DS"),
    "40": (ErrorCode.DECLINED, "Current AID is in Penalty Box"),
    "41": (ErrorCode.AUTHENTICATION_REQUIRED, "CVM Required Restart Payment"),
    "42": (ErrorCode.AUTHENTICATION_REQUIRED, "3DS Authentication Error"),
    "43": (ErrorCode.AUTHENTICATION_REQUIRED, "Online PIN required"),
    "44": (ErrorCode.DECLINED, "Try another interface"),
    "45": (ErrorCode.DECLINED, "Chip downgrade mode"),
    "46": (ErrorCode.DECLINED, "Transaction blocked by Adyen to prevent excessive retry fees"),
}
REFUSAL_BY_TEXT = {text.lower(): code for code, text in REFUSAL_REASONS.values()}

# Adyen errorCode of a 400/422 answer -> normalized code; any other refused request is
# INVALID_REQUEST. 704 is not here: it means "in progress", see _call.
REQUEST_ERRORS = {
    "101": ErrorCode.INVALID_ACCOUNT,  # Invalid card number
    "800": ErrorCode.INVALID_ACCOUNT,  # Contract not found
    "803": ErrorCode.INVALID_ACCOUNT,  # PaymentDetail not found (unknown stored payment method)
    "905": ErrorCode.INVALID_ACCOUNT,  # Payment details are not supported
}
IN_PROGRESS_ERROR = "704"  # "request already processed or in progress" for a repeated Idempotency-Key

# resultCodes that want the shopper in front of a browser or an app: PGI cannot do that.
SHOPPER_ACTIONS = {"RedirectShopper", "IdentifyShopper", "ChallengeShopper", "PresentToShopper"}

# Time zone abbreviations seen in the reports' TimeZone column, as fixed UTC offsets in hours.
# Ambiguous ones (CST, IST) are left out on purpose: set the account's report time zone to UTC.
REPORT_TIME_ZONES = {
    "UTC": 0, "GMT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
    "MSK": 3, "SGT": 8, "HKT": 8, "JST": 9, "AEST": 10, "AEDT": 11, "BRT": -3, "EST": -5, "EDT": -4,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip

REPORT_KINDS = {
    "settled": ReportLine.Kind.PAYMENT,
    "settledexternally": ReportLine.Kind.PAYMENT,
    "settledbulk": ReportLine.Kind.PAYMENT,
    "refunded": ReportLine.Kind.REFUND,
    "refundedexternally": ReportLine.Kind.REFUND,
    "refundedbulk": ReportLine.Kind.REFUND,
    "chargeback": ReportLine.Kind.CHARGEBACK,
    "chargebackexternally": ReportLine.Kind.CHARGEBACK,
    "secondchargeback": ReportLine.Kind.CHARGEBACK,
    "fee": ReportLine.Kind.FEE,
    "misccosts": ReportLine.Kind.FEE,
    "paymentcost": ReportLine.Kind.FEE,
    "chargebackreversed": ReportLine.Kind.OTHER,
    "refundedreversed": ReportLine.Kind.OTHER,
}
# Lifecycle records: status changes in which no money was booked (the report lists one line per
# status, so a settled payment also has Received, Authorised and SentForSettle lines).
REPORT_LIFECYCLE = {
    "received", "authorised", "sentforsettle", "sentforrefund", "refused", "cancelled", "expired",
    "error", "retried", "reversed", "capturefailed", "refundfailed", "authorisationschemefee",
}  # fmt: skip
REPORT_FEE_COLUMNS = ("Commission (SC)", "Markup (SC)", "Scheme Fees (SC)", "Interchange (SC)")


class _Refused(Exception):
    """Adyen refused the request for its content (400/422): a final answer, not an outage."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class _NotPayable(Exception):
    """The request cannot be put to Adyen at all (amount not in Adyen's minor units, bad account)."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def adyen_exponent(currency: str) -> int:
    """Adyen's number of minor-unit digits for a currency. Raises UnknownCurrency."""
    return ADYEN_EXPONENTS.get(currency, currency_exponent(currency))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The amount as Adyen's integer `value`. Raises _NotPayable when Adyen cannot carry it
    (IDR 10.50: Adyen takes IDR without decimals) and never rounds."""
    try:
        scaled = amount.scaleb(adyen_exponent(currency))
    except UnknownCurrency as exc:
        raise _NotPayable(ErrorCode.INVALID_REQUEST, f"Adyen does not take currency {currency}.") from exc
    if scaled != scaled.to_integral_value():
        raise _NotPayable(
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
    split at the last colon. Raises _NotPayable for anything else, and for a bare IBAN: PGI does
    not send account numbers to Adyen; store the SEPA mandate or card with Adyen and send its id."""
    shopper, sep, stored = from_account.strip().rpartition(":")
    if sep and shopper.strip() and stored.strip():
        return shopper.strip(), stored.strip()
    try:
        schwifty.IBAN(from_account)
    except (ValueError, schwifty.exceptions.SchwiftyException):
        pass
    else:
        raise _NotPayable(
            ErrorCode.INVALID_ACCOUNT,
            "Adyen payments take a stored payment method, not an IBAN: send "
            "'<shopperReference>:<storedPaymentMethodId>'.",
        )
    raise _NotPayable(
        ErrorCode.INVALID_ACCOUNT, "fromAccount must be '<shopperReference>:<storedPaymentMethodId>' for Adyen."
    )


def _never_connected(exc: BaseException) -> bool:
    """True when a requests exception proves that no byte of the request left: the connection was
    refused, the name did not resolve, the connect phase timed out, or the server's certificate was
    refused during the handshake. Anything else (a reset after sending, a read timeout, a broken
    answer) may have followed processing."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses in urllib3.
        if isinstance(current, (urllib3.exceptions.ConnectTimeoutError, ssl.SSLCertVerificationError)):
            return True
        for nested in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ):
            if isinstance(nested, BaseException):
                pending.append(nested)
    return False


def _error_details(exc: AdyenAPIResponseError) -> tuple[str, str]:
    """(errorCode, message) of Adyen's error body `{"status", "errorCode", "message", "errorType"}`."""
    body = exc.message if isinstance(exc.message, dict) else {}
    code = str(body.get("errorCode") or exc.error_code or "")
    message = body.get("message") or (exc.raw_response if isinstance(exc.raw_response, str) else "") or ""
    return code, str(message)[:500]


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case (Django's request.headers is case-insensitive; a dict
    is not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""


class AdyenConnector(Connector):
    """Adyen through the official SDK. One SDK client per connector, shared by threads: the SDK's
    requests-based HTTP client opens a fresh connection per call and keeps no state between calls.

    Options (from settings.PGI_GATEWAYS, see docs/06-gateway-adyen.md):
      api_key            the API credential's key, sent as x-api-key
      merchant_account   the Adyen merchant account every payment is booked on
      hmac_key           the hex HMAC key of the standard webhook (empty: every webhook is refused)
      environment        "test" or "live"
      live_endpoint_prefix  the account's live URL prefix; required for live
      checkout_url       the Checkout base URL without the version, instead of Adyen's (tests)
      webhook_username/webhook_password  HTTP Basic credentials Adyen sends with webhooks; when
                         the username is set, a webhook without them is refused
      report_url         where daily reports are downloaded from; defaults to the Customer Area's
                         download folder of the merchant account
      report_username/report_password  the report user's credentials
      timeout            seconds to wait for Adyen's answer once the request is sent
      connect_timeout    seconds to wait for the connection
    """

    # Adyen keeps idempotency keys for at least 31 days.
    replay_window = datetime.timedelta(days=31)

    display_name = "Adyen"
    webhook_reply = WebhookReply(b"[accepted]", "text/plain")

    def __init__(
        self,
        code: str,
        *,
        api_key: str,
        merchant_account: str,
        hmac_key: str = "",
        environment: str = "test",
        live_endpoint_prefix: str = "",
        checkout_url: str | None = None,
        webhook_username: str = "",
        webhook_password: str = "",
        report_url: str | None = None,
        report_username: str = "",
        report_password: str = "",
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ):
        # The options hold secrets: they are kept in attributes, not in self.options.
        super().__init__(code)
        if environment not in {"test", "live"}:
            raise ImproperlyConfigured(f"Adyen environment must be 'test' or 'live', not {environment!r}.")
        if environment == "live" and not live_endpoint_prefix and not checkout_url:
            raise ImproperlyConfigured("Adyen live needs live_endpoint_prefix (Customer Area > Developers > API URLs).")
        if not merchant_account:
            raise ImproperlyConfigured("Adyen needs a merchant_account.")
        if hmac_key:
            try:
                binascii.a2b_hex(hmac_key)
            except (binascii.Error, ValueError) as exc:
                raise ImproperlyConfigured("Adyen hmac_key must be the hex key shown in the Customer Area.") from exc
        self.merchant_account = merchant_account
        self.environment = environment
        self.hmac_key = hmac_key
        self.webhook_username = webhook_username
        self.webhook_password = webhook_password
        self.report_url = (
            report_url or f"https://ca-{environment}.adyen.com/reports/download/MerchantAccount/{merchant_account}"
        ).rstrip("/")
        self.report_username = report_username
        self.report_password = report_password
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)

        self.adyen = Adyen.Adyen(
            xapikey=api_key,
            platform=environment,
            merchant_account=merchant_account,
            live_endpoint_prefix=live_endpoint_prefix or None,
            application_name="PGI",
            # The SDK hands this value to requests unchanged, and requests reads a pair as
            # (connect, read): the two phases that decide between GatewayUnavailable and
            # GatewayTimeout. Forcing requests keeps the SDK off pycurl and urllib, which take one
            # number. The SDK itself never retries.
            http_force="requests",
            http_timeout=(self.connect_timeout, self.timeout),
        )
        self.checkout = self.adyen.checkout
        if checkout_url:
            # The SDK builds every Checkout URL as `service.baseUrl + path`, baseUrl ending in the
            # API version it was generated for (v72 in 16.0.0); keep that version, change the host.
            for service in (self.checkout.payments_api, self.checkout.modifications_api):
                version = service.baseUrl.rsplit("/", 1)[1]
                service.baseUrl = f"{checkout_url.rstrip('/')}/{version}"

    # --- calls ---------------------------------------------------------------------------------

    def _call(self, what: str, method: Callable[..., Any], *args: Any, key: str) -> dict:
        """One SDK call -> Adyen's JSON answer. Raises GatewayUnavailable, GatewayTimeout, or
        _Refused for a 400/422."""
        try:
            result = method(*args, idempotency_key=key)
        except requests.RequestException as exc:
            if _never_connected(exc):
                raise GatewayUnavailable(f"Adyen {what}: could not connect ({exc.__class__.__name__}).") from exc
            raise GatewayTimeout(
                f"Adyen {what}: no complete answer ({exc.__class__.__name__}); the outcome is unknown."
            ) from exc
        except (AdyenAPIAuthenticationError, AdyenAPIInvalidPermission) as exc:
            code, message = _error_details(exc)
            raise GatewayUnavailable(
                f"Adyen {what}: HTTP {exc.status_code}, Adyen refused PGI's API credential ({code} {message}). "
                "Check PGI_ADYEN_API_KEY and the credential's roles and merchant accounts."
            ) from exc
        except (AdyenAPIValidationError, AdyenAPIUnprocessableEntity) as exc:
            code, message = _error_details(exc)
            if code == IN_PROGRESS_ERROR:
                raise GatewayTimeout(
                    f"Adyen {what}: the same Idempotency-Key is still being processed ({message}); "
                    "the outcome is unknown."
                ) from exc
            raise _Refused(REQUEST_ERRORS.get(code, ErrorCode.INVALID_REQUEST), f"{code} {message}".strip()) from exc
        except AdyenAPIResponseError as exc:
            code, message = _error_details(exc)
            if exc.status_code >= 500 and exc.status_code != 503:
                # 500/502: Adyen failed while performing the request; 504: a proxy gave up waiting
                # after forwarding it. Either way it may have been processed.
                raise GatewayTimeout(
                    f"Adyen {what}: HTTP {exc.status_code} ({code} {message}); the outcome is unknown.".replace(
                        " ( ", " ("
                    )
                ) from exc
            raise GatewayUnavailable(f"Adyen {what}: HTTP {exc.status_code} ({code} {message})".strip() + ".") from exc
        except AdyenError as exc:
            # Raised by the SDK before sending (missing credentials, live URL prefix).
            raise GatewayUnavailable(f"Adyen {what}: {exc}") from exc
        message = result.message
        if not isinstance(message, dict) or not message:
            # A 2xx whose body is not JSON: Adyen did something, we cannot tell what.
            raise GatewayTimeout(f"Adyen {what}: an answer without a readable body; the outcome is unknown.")
        return message

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        """POST /payments with the stored payment method in `fromAccount`: `captureDelayHours` 0
        when capture is True, `additionalData.manualCapture` when it is False. Authorised is
        SUCCEEDED with capture=True (captured with the authorisation: configure the merchant account
        for immediate capture too) and AUTHORIZED with capture=False."""
        try:
            value = to_minor_units(request.amount, request.currency)
            shopper_reference, stored_id = parse_from_account(request.from_account)
        except _NotPayable as exc:
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                amount=request.amount,
                currency=request.currency,
                error_code=exc.error_code,
                error_message=exc.message,
            )
        body: dict[str, Any] = {
            "merchantAccount": self.merchant_account,
            "reference": request.payment_id,
            "amount": {"value": value, "currency": request.currency},
            "paymentMethod": {"type": "scheme", "storedPaymentMethodId": stored_id},
            "shopperReference": shopper_reference,
            "shopperInteraction": "ContAuth",
            "recurringProcessingModel": "UnscheduledCardOnFile",
            "metadata": {
                CAPTURE_METADATA_KEY: "immediate" if request.capture else "manual",
                "pgiMerchant": request.merchant_code[:80],
            },
        }
        if request.capture:
            # Captured with the authorisation, whatever capture delay the merchant account has.
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        try:
            answer = self._call(
                f"payment {request.payment_id}",
                self.checkout.payments_api.payments,
                body,
                key=idempotency_key(Operation.AUTHORIZE, request.payment_id),
            )
        except _Refused as exc:
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                amount=request.amount,
                currency=request.currency,
                error_code=exc.error_code,
                error_message=exc.message,
            )
        return self._payment_result(answer, request)

    def _payment_result(self, answer: dict, request: PaymentRequest) -> GatewayResult:
        result_code = answer.get("resultCode", "")
        amount, currency = request.amount, request.currency
        if isinstance(answer.get("amount"), dict):
            currency = answer["amount"].get("currency") or currency
            amount = from_minor_units(answer["amount"].get("value"), currency) or amount
        common = {"reference": answer.get("pspReference", ""), "amount": amount, "currency": currency}
        if result_code == "Authorised":
            status = GatewayStatus.SUCCEEDED if request.capture else GatewayStatus.AUTHORIZED
            return GatewayResult(status=status, **common)
        if result_code == "Refused":
            reason_code = str(answer.get("refusalReasonCode", ""))
            error_code, text = REFUSAL_REASONS.get(reason_code, (ErrorCode.DECLINED, "Refused"))
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                error_code=error_code,
                error_message=answer.get("refusalReason") or text,
                **common,
            )
        if result_code in {"Pending", "Received"}:
            return GatewayResult(status=GatewayStatus.PENDING, **common)
        if result_code in SHOPPER_ACTIONS:
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                error_code=ErrorCode.AUTHENTICATION_REQUIRED,
                error_message=f"Adyen answered {result_code}: the shopper must authenticate, "
                "which a server-to-server payment cannot do.",
                **common,
            )
        if result_code == "Cancelled":
            return GatewayResult(status=GatewayStatus.CANCELLED, **common)
        if result_code == "Error":
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                error_code=ErrorCode.GATEWAY_ERROR,
                error_message=answer.get("refusalReason") or "Adyen answered Error.",
                **common,
            )
        # PartiallyAuthorised, or a resultCode newer than this code: Adyen decided something we
        # cannot read. The AUTHORISATION notification will say what.
        raise GatewayTimeout(f"Adyen payment {request.payment_id}: unexpected resultCode {result_code!r}.")

    def capture(self, request: CaptureRequest) -> GatewayResult:
        """POST /payments/{pspReference}/captures. Adyen only acknowledges (`received`): PENDING,
        and the CAPTURE (or CAPTURE_FAILED) notification tells the outcome."""
        return self._modify(
            "capture",
            self.checkout.modifications_api.capture_authorised_payment,
            request.payment_id,
            request.gateway_reference,
            request.amount,
            request.currency,
            Operation.CAPTURE,
            request.key,
        )

    def void(self, request: VoidRequest) -> GatewayResult:
        """POST /payments/{pspReference}/cancels: PENDING until the CANCELLATION notification."""
        return self._modify(
            "cancel",
            self.checkout.modifications_api.cancel_authorised_payment_by_psp_reference,
            request.payment_id,
            request.gateway_reference,
            None,
            request.currency,
            Operation.VOID,
            request.key,
        )

    def _modify(
        self,
        what: str,
        method: Callable[..., Any],
        payment_id: str,
        gateway_reference: str,
        amount: Decimal | None,
        currency: str,
        operation: Operation,
        key: str,
    ) -> GatewayResult:
        body: dict[str, Any] = {"merchantAccount": self.merchant_account, "reference": payment_id}
        try:
            if amount is not None:
                body["amount"] = {"value": to_minor_units(amount, currency), "currency": currency}
            answer = self._call(
                f"{what} of {payment_id}", method, body, gateway_reference, key=key
            )
        except (_Refused, _NotPayable) as exc:
            return GatewayResult(
                status=GatewayStatus.DECLINED,
                reference=gateway_reference,
                amount=amount,
                currency=currency,
                error_code=exc.error_code,
                error_message=exc.message,
            )
        if answer.get("status") != "received":
            raise GatewayTimeout(f"Adyen {what} of {payment_id}: unexpected status {answer.get('status')!r}.")
        return GatewayResult(
            status=GatewayStatus.PENDING,
            reference=answer.get("paymentPspReference") or gateway_reference,
            amount=amount,
            currency=currency,
        )

    def refund(self, request: RefundRequest) -> RefundResult:
        """POST /payments/{pspReference}/refunds with the refund id as `reference` and as the
        Idempotency-Key: PENDING until the REFUND (or REFUND_FAILED) notification."""
        try:
            body = {
                "merchantAccount": self.merchant_account,
                "reference": request.refund_id,
                "amount": {"value": to_minor_units(request.amount, request.currency), "currency": request.currency},
            }
            answer = self._call(
                f"refund {request.refund_id}",
                self.checkout.modifications_api.refund_captured_payment,
                body,
                request.gateway_reference,
                key=idempotency_key(Operation.REFUND, request.refund_id),
            )
        except (_Refused, _NotPayable) as exc:
            return RefundResult(
                status=RefundStatus.FAILED,
                amount=request.amount,
                currency=request.currency,
                error_code=exc.error_code,
                error_message=exc.message,
            )
        if answer.get("status") != "received":
            raise GatewayTimeout(f"Adyen refund {request.refund_id}: unexpected status {answer.get('status')!r}.")
        return RefundResult(
            status=RefundStatus.PENDING,
            reference=answer.get("pspReference", ""),
            amount=request.amount,
            currency=request.currency,
        )

    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        """Always None: Adyen's Checkout API has no payment lookup.

        PGI's recovery then re-sends POST /payments with the same Idempotency-Key (the payment id),
        which Adyen answers with the original result without charging again. Adyen keeps
        idempotency keys for at least 31 days; past that a re-send would be a new payment, so
        recovery must not replay payments older than that (their notifications settle them)."""
        return None

    # --- webhooks ------------------------------------------------------------------------------

    def webhook_problem(self) -> str:
        return "" if self.hmac_key else "no PGI_ADYEN_HMAC_KEY is set"

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> Sequence[WebhookEvent]:
        """Adyen's standard notification: `{"live": "false", "notificationItems":
        [{"NotificationRequestItem": {...}}, ...]}`.

        Every item must carry a valid HMAC signature (additionalData.hmacSignature, checked with
        the SDK's is_valid_hmac_notification), and, when webhook_username is set, the request must
        carry those Basic credentials; otherwise InvalidSignature and nothing is returned. Adyen's
        HMAC signs no timestamp and Adyen retries for days, so old eventDates are accepted: the
        event id (pspReference, eventCode, success) lets PGI drop a repeated delivery.

        Items for other merchant accounts and event codes PGI does not act on yield no event.
        """
        if not self.hmac_key:
            raise WebhookNotConfigured(self.webhook_problem())
        self._check_basic_auth(headers)
        try:
            payload = json.loads(body, parse_float=Decimal)
            items = [entry["NotificationRequestItem"] for entry in payload["notificationItems"]]
            live = str(payload.get("live", "")).lower()
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            # The signatures are inside the body: one that cannot be read cannot be verified.
            raise InvalidSignature("The body is not an Adyen notification; it cannot be verified.") from exc
        if not items or not all(isinstance(item, dict) for item in items):
            raise InvalidSignature("The notification has no items to verify.")
        for item in items:
            self._check_hmac(item)
        # Verified: whatever fails from here is a notification PGI cannot read, not a forgery.
        if live != ("true" if self.environment == "live" else "false"):
            raise InvalidNotification(f"A notification with live={live[:10]!r} sent to the Adyen {self.environment} connector.")
        events = []
        for item in items:
            if item.get("merchantAccountCode") != self.merchant_account:
                logger.info("Adyen notification for merchant account %s ignored", item.get("merchantAccountCode"))
                continue
            try:
                event = self._event(item)
            except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
                raise InvalidNotification("A notification item lacks a field PGI needs.") from exc
            if event is not None:
                events.append(event)
        return events

    def _check_basic_auth(self, headers: Mapping[str, str]) -> None:
        if not self.webhook_username:
            return
        expected = "Basic " + base64.b64encode(f"{self.webhook_username}:{self.webhook_password}".encode()).decode()
        given = _header(headers, "Authorization")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidSignature("Missing or wrong HTTP Basic credentials.")

    def _check_hmac(self, item: dict) -> None:
        additional = item.get("additionalData")
        if not isinstance(additional, dict) or not additional.get("hmacSignature"):
            raise InvalidSignature("A notification item has no HMAC signature.")
        try:
            valid = Adyen.util.is_valid_hmac_notification(item, self.hmac_key)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError, binascii.Error) as exc:
            raise InvalidSignature("A notification item cannot be verified.") from exc
        if not valid:
            raise InvalidSignature("A notification item's HMAC signature does not match.")

    def _event(self, item: dict) -> WebhookEvent | None:
        event_code = item["eventCode"]
        success = str(item.get("success", "")).lower() == "true"
        psp_reference = item["pspReference"]
        original_reference = item.get("originalReference", "") or ""
        merchant_reference = item.get("merchantReference", "") or ""
        additional = item.get("additionalData") or {}
        reason = item.get("reason", "") or ""
        amount_field = item.get("amount") or {}
        currency = amount_field.get("currency", "")
        value = amount_field.get("value")
        if value is not None and not (isinstance(value, int) and abs(value) < MAX_MINOR_UNITS):
            raise ValueError(f"amount value {str(value)[:30]!r}")
        amount = from_minor_units(amount_field.get("value"), currency) if currency else None
        event_id = f"{psp_reference}:{event_code}:{'true' if success else 'false'}"
        common = {"event_id": event_id, "raw_type": event_code}

        def payment_event(
            operation: Operation, status: GatewayStatus, error_code: str = "", message: str = "", **flags
        ):
            reference = psp_reference if operation is Operation.AUTHORIZE else (original_reference or psp_reference)
            result = GatewayResult(
                status=status,
                reference=reference,
                amount=amount,
                currency=currency,
                error_code=error_code,
                error_message=message,
            )
            return WebhookEvent(
                operation=operation,
                payment_id=merchant_reference,
                result=result,
                gateway_reference=reference,
                **common,
                **flags,
            )

        def refund_event(status: RefundStatus, message: str = ""):
            result = RefundResult(
                status=status,
                reference=psp_reference,
                amount=amount,
                currency=currency,
                error_code=ErrorCode.GATEWAY_ERROR if status is RefundStatus.FAILED else "",
                error_message=message,
            )
            # A refund notification names the refund (merchantReference = PGI's refund id) and the
            # payment's pspReference (originalReference), not PGI's payment id.
            return WebhookEvent(
                operation=Operation.REFUND,
                payment_id="",
                refund_id=merchant_reference,
                refund_result=result,
                gateway_reference=original_reference,
                **common,
            )

        # Only signed fields (pspReference, originalReference, merchantAccountCode, merchantReference,
        # amount, eventCode, success) decide what moves; `reason` and additionalData are not signed
        # and only name a refusal's code and text, or pick the kind of a CANCEL_OR_REFUND (a wrong
        # pick names nothing it could move: docs/06-gateway-adyen.md).
        failed = f"Adyen: {reason}" if reason else "Adyen reported a failure."
        if event_code == "AUTHORISATION":
            if not success:
                error_code = REFUSAL_BY_TEXT.get(reason.lower(), ErrorCode.DECLINED)
                return payment_event(Operation.AUTHORIZE, GatewayStatus.DECLINED, error_code, reason)
            # Whether it was captured too is what PGI asked (captureDelayHours 0), kept in PGI's
            # record of the payment; the metadata echoed in additionalData is not signed.
            return payment_event(Operation.AUTHORIZE, GatewayStatus.AUTHORIZED, captured_if_requested=True)
        if event_code == "OFFER_CLOSED":
            # A pending payment the shopper never completed: it lapsed, nothing moved.
            return payment_event(Operation.AUTHORIZE, GatewayStatus.CANCELLED) if success else None
        if event_code == "CAPTURE":
            if success:
                return payment_event(Operation.CAPTURE, GatewayStatus.SUCCEEDED)
            return payment_event(Operation.CAPTURE, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, failed)
        if event_code == "CAPTURE_FAILED":
            return payment_event(Operation.CAPTURE, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, failed)
        if event_code == "CANCELLATION":
            if success:
                return payment_event(Operation.VOID, GatewayStatus.CANCELLED)
            return payment_event(Operation.VOID, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, failed)
        if event_code == "CANCEL_OR_REFUND":
            action = additional.get("modification.action", "")
            if action == "refund":
                return refund_event(RefundStatus.SUCCEEDED if success else RefundStatus.FAILED, reason)
            if action == "cancel":
                if success:
                    return payment_event(Operation.VOID, GatewayStatus.CANCELLED)
                return payment_event(Operation.VOID, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, failed)
            logger.warning("Adyen CANCEL_OR_REFUND %s without modification.action ignored", psp_reference)
            return None
        if event_code == "REFUND":
            return refund_event(RefundStatus.SUCCEEDED if success else RefundStatus.FAILED, "" if success else failed)
        if event_code in {"REFUND_FAILED", "REFUNDED_REVERSED"}:
            reversed_ = event_code == "REFUNDED_REVERSED"
            return refund_event(RefundStatus.FAILED, "Adyen: the refund was returned." if reversed_ else failed)
        return None

    # --- reports -------------------------------------------------------------------------------

    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        """Download payments_accounting_report_YYYY_MM_DD.csv with the report user's Basic
        credentials and normalize its booked lines (settled payments, refunds, chargebacks, fees).
        Lifecycle lines (Received, Authorised, SentForSettle, ...) carry no booked money and are
        skipped. 404 (not generated yet), any other non-200 and connection errors are
        GatewayUnavailable; a file PGI cannot read is GatewayError."""
        url = f"{self.report_url}/payments_accounting_report_{day:%Y_%m_%d}.csv"
        try:
            response = requests.get(
                url,
                auth=(self.report_username, self.report_password),
                timeout=(self.connect_timeout, self.timeout),
            )
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"Adyen report for {day}: {exc.__class__.__name__}.") from exc
        if response.status_code == 404:
            raise GatewayUnavailable(f"Adyen has no payments accounting report for {day} yet.")
        if response.status_code != 200:
            raise GatewayUnavailable(f"Adyen report for {day}: HTTP {response.status_code}.")
        return self._report_lines(response.content.decode("utf-8-sig"))

    def _report_lines(self, text: str) -> list[ReportLine]:
        lines = []
        reader = csv.DictReader(io.StringIO(text))
        for number, row in enumerate(reader, start=2):
            try:
                line = self._report_line(row)
            except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
                raise GatewayError(f"Adyen report line {number} cannot be read: {exc!r}") from exc
            if line is not None:
                lines.append(line)
        return lines

    def _report_line(self, row: dict[str, str]) -> ReportLine | None:
        record_type = (row.get("Record Type") or "").strip()
        kind = REPORT_KINDS.get(record_type.lower())
        if kind is None and record_type.lower() in REPORT_LIFECYCLE:
            return None
        if (row.get("Merchant Account") or self.merchant_account) != self.merchant_account:
            return None
        kind = kind or ReportLine.Kind.OTHER
        currency = (row.get("Main Currency") or row.get("Settlement Currency") or "").strip()
        fee_values = [Decimal(row[name]) for name in REPORT_FEE_COLUMNS if (row.get(name) or "").strip()]
        fee_total = sum((abs(value) for value in fee_values), Decimal(0)) if fee_values else None
        main_amount = (row.get("Main Amount") or "").strip()
        if main_amount:
            amount = abs(Decimal(main_amount))
        elif kind is ReportLine.Kind.FEE and fee_total is not None:
            amount = fee_total
        else:
            raise ValueError("no Main Amount")
        # Costs are in the settlement currency: they go in `fee` only when that is the line's currency.
        same_currency = (row.get("Settlement Currency") or "").strip() in {"", currency}
        fee = fee_total if same_currency and kind is not ReportLine.Kind.FEE else None
        return ReportLine(
            kind=kind,
            gateway_reference=(row.get("Psp Reference") or "").strip(),
            payment_id=(row.get("Merchant Reference") or "").strip(),
            amount=amount,
            currency=currency,
            booked_at=self._booked_at(row["Booking Date"], row.get("TimeZone") or "UTC"),
            fee=fee,
            refund_id=(row.get("Modification Merchant Reference") or "").strip()
            if kind is ReportLine.Kind.REFUND
            else "",
            status=record_type,
        )

    @staticmethod
    def _booked_at(value: str, zone: str) -> datetime.datetime:
        """`YYYY-MM-DD HH:MM:SS` in the report's TimeZone -> an aware UTC datetime."""
        hours = REPORT_TIME_ZONES.get(zone.strip().upper())
        if hours is None:
            raise ValueError(f"unknown report time zone {zone!r}; set the report time zone to UTC")
        naive = datetime.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
        local = naive.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=hours)))
        return local.astimezone(datetime.timezone.utc)
