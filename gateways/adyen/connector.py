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

import binascii
import datetime
import logging
import ssl
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

import Adyen
import requests
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

from pgi.text import clip

from ..base import (
    CaptureRequest,
    Connector,
    ErrorCode,
    GatewayResult,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
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
from .amounts import NotPayable, from_minor_units, parse_from_account, to_minor_units
from .codes import IN_PROGRESS_ERROR, REFUSAL_REASONS, REQUEST_ERRORS, SHOPPER_ACTIONS
from .report import report_lines
from .webhooks import notification_events

logger = logging.getLogger(__name__)

# The metadata key that records the capture mode of a payment, for people reading it in Adyen's
# Customer Area. Adyen echoes it in additionalData, which its HMAC does not sign: PGI never decides
# on it (an AUTHORISATION's capture follows PGI's own record of the payment).
CAPTURE_METADATA_KEY = "pgiCapture"


class _Refused(Exception):
    """Adyen refused the request for its content (400/422): a final answer, not an outage."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message



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
    return code, clip(str(message), 500)


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
        except NotPayable as exc:
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
                "pgiMerchant": clip(request.merchant_code, 80),
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
        except (_Refused, NotPayable) as exc:
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
        except (_Refused, NotPayable) as exc:
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
        """See webhooks.notification_events: HMAC-signed items, Basic credentials when configured."""
        if not self.hmac_key:
            raise WebhookNotConfigured(self.webhook_problem())
        return notification_events(
            headers=headers,
            body=body,
            hmac_key=self.hmac_key,
            webhook_username=self.webhook_username,
            webhook_password=self.webhook_password,
            environment=self.environment,
            merchant_account=self.merchant_account,
        )

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
        return report_lines(response.content.decode("utf-8-sig"), merchant_account=self.merchant_account)
