"""Stripe, through the official SDK (`stripe`), behind PGI's connector interface.

A payment is one PaymentIntent, created and confirmed in one call (`confirm=true`) with the
payment method PGI was given in `fromAccount` (`pm_…`), server to server: no redirects, and a
payment that needs the shopper's 3-D Secure fails at once (`error_on_requires_action`) instead of
waiting for a shopper PGI cannot reach. PGI's ids travel in the PaymentIntent's metadata
(`pgi_payment_id`, `pgi_merchant`) and in each Refund's (`pgi_refund_id`, `pgi_payment_id`), and
every write carries the idempotency key of `gateways.base.idempotency_key`.

One `stripe.StripeClient` per connector, with its own key and HTTP client: nothing is set on the
SDK's module globals, so one process can serve several Stripe accounts from several threads. The
SDK's own network retries are off: a retry is PGI's decision (routing, recovery), made with the
knowledge of whether the first request may have been processed.

Failures, and what they mean for PGI:

| what happened | raised / returned |
|---|---|
| connection refused, DNS failure, connect timeout, TLS certificate refused | GatewayUnavailable |
| 429 (Stripe's rate limiter runs before anything is done) | GatewayUnavailable |
| 401 / 403: Stripe refused our API key | GatewayUnavailable, saying so |
| read timeout, connection dropped once the request was sent | GatewayTimeout on a write |
| 5xx or 409 to a write | GatewayTimeout (see below) |
| any failure of a read (status, report) | GatewayUnavailable: a read changes nothing |
| 402 card error, 400 request refused | a DECLINED result (FAILED for a refund) |

Stripe documents a 5xx as indeterminate: "a server error … leaves the outcome unknown; reconcile
the request before starting another operation" (docs.stripe.com/error-handling), and a 500 raised
inside an endpoint is saved under the idempotency key, so a replay returns the same 500. A 5xx
to a write therefore cannot mean "nothing was charged": failing over to another gateway could
charge the shopper twice. It is a GatewayTimeout, settled by `status`, a webhook, or recovery.
This deliberately narrows gateways/base.py's "5xx → GatewayUnavailable" for Stripe's writes.

Telling the connect phase from the read phase: the SDK wraps every transport error in
`stripe.APIConnectionError`, raised `from` the `requests` exception. `_sent_nothing` reads that
exception and answers True only when it is certainly a failure before the request left: a connect
timeout, or urllib3's connection errors (refused, DNS: `NewConnectionError`, which urllib3 itself
defines as "fairly sure that the server did not receive the request"), or a refused TLS
certificate. Anything else (read timeout, connection reset or closed while waiting for the answer,
an error this code does not recognize, a missing cause) counts as "may have been processed".
"""

import dataclasses
import datetime
import logging
import ssl
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence, TypeVar

import requests
import stripe
import urllib3
from django.conf import settings

from pgi.money import UnknownCurrency, currency_exponent, fits_currency, quantize

from .base import (
    CaptureRequest,
    Connector,
    ErrorCode,
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
    idempotency_key,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

SIGNATURE_HEADER = "Stripe-Signature"
METADATA_PAYMENT_ID = "pgi_payment_id"
METADATA_MERCHANT = "pgi_merchant"
METADATA_REFUND_ID = "pgi_refund_id"
METADATA_REASON = "pgi_reason"
METADATA_VALUE_MAX = 500  # Stripe's limit on a metadata value

# --- Amounts ------------------------------------------------------------------------------
# Stripe wants integers in minor units. Where its minor unit differs from ISO 4217's
# (docs.stripe.com/currencies#special-cases), this table wins:
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


# --- Codes --------------------------------------------------------------------------------
# Stripe's decline codes (docs.stripe.com/declines/codes) and card error codes onto PGI's. Anything
# not listed is a plain DECLINED; Stripe's own code and message stay in the result's message.
DECLINE_CODES: dict[str, ErrorCode] = {
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "expired_card": ErrorCode.CARD_EXPIRED,
    "fraudulent": ErrorCode.FRAUD_SUSPECTED,
    "stolen_card": ErrorCode.FRAUD_SUSPECTED,
    "lost_card": ErrorCode.FRAUD_SUSPECTED,
    "pickup_card": ErrorCode.FRAUD_SUSPECTED,
    "merchant_blacklist": ErrorCode.FRAUD_SUSPECTED,
    "security_violation": ErrorCode.FRAUD_SUSPECTED,
    "incorrect_number": ErrorCode.INVALID_ACCOUNT,
    "invalid_number": ErrorCode.INVALID_ACCOUNT,
    "invalid_account": ErrorCode.INVALID_ACCOUNT,
    "incorrect_cvc": ErrorCode.INVALID_ACCOUNT,
    "invalid_cvc": ErrorCode.INVALID_ACCOUNT,
    "invalid_expiry_month": ErrorCode.INVALID_ACCOUNT,
    "invalid_expiry_year": ErrorCode.INVALID_ACCOUNT,
    "authentication_required": ErrorCode.AUTHENTICATION_REQUIRED,
    "card_velocity_exceeded": ErrorCode.LIMIT_EXCEEDED,
    "withdrawal_count_limit_exceeded": ErrorCode.LIMIT_EXCEEDED,
    "processing_error": ErrorCode.GATEWAY_ERROR,
    "issuer_not_available": ErrorCode.GATEWAY_ERROR,
    "try_again_later": ErrorCode.GATEWAY_ERROR,
    "reenter_transaction": ErrorCode.GATEWAY_ERROR,
}
# A refund's failure_reason (docs.stripe.com/api/refunds/object#refund_object-failure_reason).
REFUND_FAILURES: dict[str, ErrorCode] = {
    "expired_or_canceled_card": ErrorCode.CARD_EXPIRED,
    "lost_or_stolen_card": ErrorCode.INVALID_ACCOUNT,
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "declined": ErrorCode.DECLINED,
}
REFUND_STATUSES = {
    "succeeded": RefundStatus.SUCCEEDED,
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}
AUTHENTICATION_MESSAGE = "The payment needs the shopper's authentication (3-D Secure), which PGI cannot complete."

# Webhook event types and the operation each reports. payment_intent.succeeded is CAPTURE for a
# manual-capture PaymentIntent and AUTHORIZE otherwise (decided per event).
PAYMENT_EVENTS: dict[str, Operation | None] = {
    "payment_intent.succeeded": None,
    "payment_intent.amount_capturable_updated": Operation.AUTHORIZE,
    "payment_intent.payment_failed": Operation.AUTHORIZE,
    "payment_intent.processing": Operation.AUTHORIZE,
    "payment_intent.canceled": Operation.VOID,
}
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})

# Balance transaction types (docs.stripe.com/api/balance_transactions/object#balance_transaction_object-type).
PAYMENT_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
FEE_TYPES = frozenset({"stripe_fee", "stripe_fx_fee", "tax_fee", "application_fee"})


def _sent_nothing(cause: BaseException | None) -> bool:
    """True only when the transport error certainly happened before the request left this host."""
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return True  # never sent: a configuration error
    if not isinstance(cause, requests.exceptions.ConnectionError):  # includes SSLError, ProxyError
        return False
    reason = cause.args[0] if cause.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    if isinstance(reason, urllib3.exceptions.ProxyError):
        reason = reason.original_error
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):  # NewConnectionError, NameResolutionError
        return True
    if isinstance(reason, urllib3.exceptions.SSLError):
        # The certificate is checked in the handshake, before the request is written; any other
        # TLS failure may come while the answer is read.
        inner = reason.args[0] if reason.args else None
        return isinstance(inner, (ssl.SSLCertVerificationError, ssl.CertificateError))
    return False


def _describe(cause: BaseException | None) -> str:
    if cause is None:
        return "no detail"
    text = str(cause)
    return f"{type(cause).__name__}: {text[:200]}" if text else type(cause).__name__


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def _get(obj: Any, key: str) -> Any:
    """A field of a Stripe object (the SDK's objects are not dicts) or of a dict; None if absent."""
    if obj is None:
        return None
    try:
        return obj[key]
    except KeyError:
        return None


def _metadata(obj: Any, key: str) -> str:
    return str(_get(_get(obj, "metadata"), key) or "")


def _search_literal(value: str) -> str:
    """A value as a quoted string of Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _source_id(source: Any) -> str:
    if not source:
        return ""
    return source if isinstance(source, str) else str(_get(source, "id") or "")


class StripeConnector(Connector):
    display_name = "Stripe"
    # Stripe keeps an idempotency key's first answer for 24 hours.
    replay_window = datetime.timedelta(hours=24)

    def __init__(
        self,
        code: str,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        proxy: str | None = None,
    ):
        """`api_key`: a secret (`sk_…`) or restricted (`rk_…`) key. `webhook_secret`: the endpoint's
        signing secret (`whsec_…`). `api_base`: another address for Stripe's API (tests: the fake).
        `timeout`: seconds to wait for an answer once connected; `connect_timeout`: seconds to
        connect. `proxy`: an outbound HTTP(S) proxy URL. An empty key or secret is accepted so that
        PGI starts without Stripe configured; calls then raise GatewayUnavailable and webhooks
        are refused."""
        super().__init__(code)
        self._api_key = api_key or ""
        self._webhook_secret = webhook_secret or ""
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        http_client = stripe.RequestsClient(timeout=(self.connect_timeout, self.timeout), proxy=proxy or None)
        self._client = stripe.StripeClient(
            self._api_key or "sk_unconfigured",
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=0,
            http_client=http_client,
        )

    # --- the calls ------------------------------------------------------------------------

    def _send(self, call: Callable[[], T], *, what: str, writes: bool) -> T:
        """Run one SDK call. Turns transport, rate-limit, credential and server failures into
        GatewayUnavailable or GatewayTimeout; lets Stripe's answers about the request itself
        (CardError, InvalidRequestError, IdempotencyError) through to the caller."""
        if not self._api_key:
            raise GatewayUnavailable(f"{self.code}: no Stripe API key is configured; nothing was sent.")
        try:
            return call()
        except stripe.APIConnectionError as exc:
            cause = exc.__cause__
            if _sent_nothing(cause):
                raise GatewayUnavailable(
                    f"{self.code}: could not reach Stripe for {what} ({_describe(cause)})"
                ) from exc
            if writes:
                raise GatewayTimeout(
                    f"{self.code}: no answer from Stripe to {what}; it may have been processed ({_describe(cause)})"
                ) from exc
            raise GatewayUnavailable(f"{self.code}: no answer from Stripe to {what} ({_describe(cause)})") from exc
        except stripe.RateLimitError as exc:
            raise GatewayUnavailable(f"{self.code}: Stripe rate-limited {what} (429); nothing was done") from exc
        except stripe.AuthenticationError as exc:
            raise GatewayUnavailable(
                f"{self.code}: Stripe refused PGI's API key ({exc.http_status}): check PGI_STRIPE_API_KEY. "
                f"Nothing was done. Stripe said: {exc.user_message}"
            ) from exc
        except stripe.PermissionError as exc:
            raise GatewayUnavailable(
                f"{self.code}: PGI's Stripe API key may not make {what} (403): check its permissions. "
                f"Nothing was done. Stripe said: {exc.user_message}"
            ) from exc
        except stripe.APIError as exc:  # 5xx, 409, unreadable answers
            if writes:
                raise GatewayTimeout(
                    f"{self.code}: Stripe answered {exc.http_status} to {what}; the outcome is unknown until "
                    f"Stripe reports it ({exc.user_message})"
                ) from exc
            raise GatewayUnavailable(
                f"{self.code}: Stripe answered {exc.http_status} to {what} ({exc.user_message})"
            ) from exc

    def _conflict(self, exc: stripe.IdempotencyError, what: str) -> GatewayTimeout:
        # The key was used before with other parameters: Stripe did not run this request, but the
        # first one may have moved money. Only Stripe's record of that first request settles it.
        return GatewayTimeout(f"{self.code}: Stripe refused {what} as an idempotency conflict: {exc.user_message}")

    # --- results --------------------------------------------------------------------------

    def _payment_result(self, intent: Any) -> GatewayResult:
        currency = str(intent["currency"]).upper()
        status = intent["status"]
        fields = {"reference": intent["id"], "currency": currency}
        if status == "succeeded":
            amount = from_minor_units(intent["amount_received"], currency)
            return GatewayResult(GatewayStatus.SUCCEEDED, amount=amount, **fields)
        amount = from_minor_units(intent["amount"], currency)
        if status == "requires_capture":
            capturable = _get(intent, "amount_capturable") or intent["amount"]
            return GatewayResult(GatewayStatus.AUTHORIZED, amount=from_minor_units(capturable, currency), **fields)
        if status == "canceled":
            return GatewayResult(GatewayStatus.CANCELLED, amount=amount, **fields)
        if status == "requires_action":
            return GatewayResult(
                GatewayStatus.DECLINED,
                amount=amount,
                error_code=ErrorCode.AUTHENTICATION_REQUIRED,
                error_message=AUTHENTICATION_MESSAGE,
                **fields,
            )
        if status in ("requires_payment_method", "requires_confirmation"):
            error = _get(intent, "last_payment_error")
            if error:
                code, message = self._decline(error)
                return GatewayResult(
                    GatewayStatus.DECLINED, amount=amount, error_code=code, error_message=message, **fields
                )
            return GatewayResult(
                GatewayStatus.DECLINED,
                amount=amount,
                error_code=ErrorCode.GATEWAY_ERROR,
                error_message=f"Stripe holds no payment attempt for this PaymentIntent ({status}).",
                **fields,
            )
        # "processing", and any status newer than this code: the outcome comes later.
        return GatewayResult(GatewayStatus.PENDING, amount=amount, **fields)

    @staticmethod
    def _decline(error: Any) -> tuple[ErrorCode, str]:
        stripe_code = _get(error, "decline_code") or _get(error, "code") or ""
        message = _get(error, "message") or "The payment was declined."
        return DECLINE_CODES.get(stripe_code, ErrorCode.DECLINED), message

    def _declined(self, exc: stripe.StripeError, request: PaymentRequest) -> GatewayResult:
        error = exc.error
        intent = _get(error, "payment_intent") if error else None
        if intent and _get(intent, "status") not in (None, "requires_payment_method", "requires_confirmation"):
            return self._payment_result(intent)  # the error came with a PaymentIntent that says otherwise
        code, message = self._decline(error or {"code": exc.code, "message": exc.user_message})
        return GatewayResult(
            GatewayStatus.DECLINED,
            reference=intent["id"] if intent else "",
            amount=request.amount,
            currency=request.currency,
            error_code=code,
            error_message=message,
        )

    def _refused(
        self, exc: stripe.InvalidRequestError | stripe.CardError, *, reference: str, amount: Decimal, currency: str
    ) -> GatewayResult:
        """A 400 to a capture or void. Refused because of the PaymentIntent's state: what that state
        is, with ALREADY_PROCESSED. Refused for its content: DECLINED with INVALID_REQUEST."""
        intent = _get(exc.error, "payment_intent") if exc.error else None
        if exc.code == "payment_intent_unexpected_state" and intent:
            return dataclasses.replace(
                self._payment_result(intent),
                error_code=ErrorCode.ALREADY_PROCESSED,
                error_message=exc.user_message or "",
            )
        return GatewayResult(
            GatewayStatus.DECLINED,
            reference=reference,
            amount=amount,
            currency=currency,
            error_code=ErrorCode.INVALID_REQUEST,
            error_message=exc.user_message or "",
        )

    def _refund_result(self, refund: Any) -> RefundResult:
        currency = str(refund["currency"]).upper()
        status = REFUND_STATUSES.get(refund["status"], RefundStatus.PENDING)
        error_code, error_message = "", ""
        if status is RefundStatus.FAILED:
            reason = _get(refund, "failure_reason") or refund["status"]
            error_code = REFUND_FAILURES.get(reason, ErrorCode.GATEWAY_ERROR)
            error_message = f"Stripe: refund {refund['status']} ({reason})."
        return RefundResult(
            status=status,
            reference=refund["id"],
            amount=from_minor_units(refund["amount"], currency),
            currency=currency,
            error_code=error_code,
            error_message=error_message,
        )

    # --- Connector ------------------------------------------------------------------------

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        try:
            amount = to_minor_units(request.amount, request.currency)
        except AmountNotAccepted as exc:
            return GatewayResult(
                GatewayStatus.DECLINED,
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=str(exc),
            )
        params: dict[str, Any] = {
            "amount": amount,
            "currency": request.currency.lower(),
            "payment_method": request.from_account,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "error_on_requires_action": True,
            "metadata": {METADATA_PAYMENT_ID: request.payment_id, METADATA_MERCHANT: request.merchant_code},
        }
        if request.description:
            params["description"] = request.description
        options = {"idempotency_key": idempotency_key(Operation.AUTHORIZE, request.payment_id)}
        try:
            intent = self._send(
                lambda: self._client.v1.payment_intents.create(params, options),  # type: ignore[arg-type]
                what=f"authorize {request.payment_id}",
                writes=True,
            )
        except stripe.CardError as exc:
            return self._declined(exc, request)
        except stripe.IdempotencyError as exc:
            raise self._conflict(exc, f"authorize {request.payment_id}") from exc
        except stripe.InvalidRequestError as exc:
            unknown_method = exc.code == "resource_missing" and exc.param == "payment_method"
            intent = _get(exc.error, "payment_intent") if exc.error else None
            return GatewayResult(
                GatewayStatus.DECLINED,
                reference=intent["id"] if intent else "",
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.INVALID_ACCOUNT if unknown_method else ErrorCode.INVALID_REQUEST,
                error_message=exc.user_message or "",
            )
        return self._payment_result(intent)

    def capture(self, request: CaptureRequest) -> GatewayResult:
        return self._settle_hold(
            request,
            Operation.CAPTURE,
            lambda amount: self._client.v1.payment_intents.capture(
                request.gateway_reference,
                {"amount_to_capture": amount},
                {"idempotency_key": request.key},
            ),
        )

    def void(self, request: VoidRequest) -> GatewayResult:
        return self._settle_hold(
            request,
            Operation.VOID,
            lambda amount: self._client.v1.payment_intents.cancel(
                request.gateway_reference,
                None,
                {"idempotency_key": request.key},
            ),
        )

    def _settle_hold(self, request: CaptureRequest | VoidRequest, operation: Operation, call) -> GatewayResult:
        what = f"{operation.value} {request.payment_id}"
        try:
            amount = to_minor_units(request.amount, request.currency)
        except AmountNotAccepted as exc:
            return GatewayResult(
                GatewayStatus.DECLINED,
                reference=request.gateway_reference,
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=str(exc),
            )
        try:
            intent = self._send(lambda: call(amount), what=what, writes=True)
        except stripe.IdempotencyError as exc:
            raise self._conflict(exc, what) from exc
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            return self._refused(
                exc, reference=request.gateway_reference, amount=request.amount, currency=request.currency
            )
        return self._payment_result(intent)

    def refund(self, request: RefundRequest) -> RefundResult:
        what = f"refund {request.refund_id} of {request.payment_id}"
        try:
            amount = to_minor_units(request.amount, request.currency)
        except AmountNotAccepted as exc:
            return RefundResult(
                RefundStatus.FAILED,
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=str(exc),
            )
        metadata = {METADATA_REFUND_ID: request.refund_id, METADATA_PAYMENT_ID: request.payment_id}
        if request.reason:
            # Stripe's own `reason` takes three fixed words; PGI's free text goes in the metadata.
            metadata[METADATA_REASON] = request.reason[:METADATA_VALUE_MAX]
        params = {"payment_intent": request.gateway_reference, "amount": amount, "metadata": metadata}
        options = {"idempotency_key": idempotency_key(Operation.REFUND, request.refund_id)}
        try:
            refund = self._send(
                lambda: self._client.v1.refunds.create(params, options),  # type: ignore[arg-type]
                what=what,
                writes=True,
            )
        except stripe.IdempotencyError as exc:
            raise self._conflict(exc, what) from exc
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            already = exc.code == "charge_already_refunded"
            return RefundResult(
                RefundStatus.FAILED,
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.ALREADY_PROCESSED if already else ErrorCode.INVALID_REQUEST,
                error_message=exc.user_message or "",
            )
        return self._refund_result(refund)

    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        """By PaymentIntent id when PGI has one; otherwise by searching the metadata for PGI's payment
        id. Stripe's search is eventually consistent (usually under a minute, longer during an
        incident): a PaymentIntent created moments ago may not show yet, and None then only means
        "not found yet". That is safe: recovery re-sends the payment with the same idempotency key,
        which Stripe answers with its first response for 24 hours."""
        if gateway_reference:
            try:
                intent = self._send(
                    lambda: self._client.v1.payment_intents.retrieve(gateway_reference),
                    what=f"status of {payment_id}",
                    writes=False,
                )
            except stripe.InvalidRequestError as exc:
                logger.warning(
                    "%s: PaymentIntent %s of %s not readable (%s); searching by payment id",
                    self.code,
                    gateway_reference,
                    payment_id,
                    exc.user_message,
                )
            else:
                return self._payment_result(intent)
        query = f"metadata[{_search_literal(METADATA_PAYMENT_ID)}]:{_search_literal(payment_id)}"
        try:
            found = self._send(
                lambda: self._client.v1.payment_intents.search({"query": query, "limit": 10}),
                what=f"status of {payment_id}",
                writes=False,
            )
        except stripe.InvalidRequestError as exc:
            raise GatewayUnavailable(
                f"{self.code}: Stripe refused the search for {payment_id}: {exc.user_message}"
            ) from exc
        intents = list(found.data)
        if not intents:
            return None
        if len(intents) > 1:
            logger.warning("%s: %d PaymentIntents carry payment %s", self.code, len(intents), payment_id)
        # Several only if the same payment was sent under an expired key: report the one that went furthest.
        rank = {"succeeded": 0, "requires_capture": 1, "processing": 2}
        furthest = min(intents, key=lambda intent: (rank.get(intent["status"], 3), -intent["created"]))
        return self._payment_result(furthest)

    def webhook_problem(self) -> str:
        return "" if self._webhook_secret else "no PGI_STRIPE_WEBHOOK_SECRET is set"

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> Sequence[WebhookEvent]:
        """One Stripe event per delivery, verified with the SDK's own check (HMAC-SHA256 of
        "<t>.<body>" with the endpoint secret; `t` not older than PGI_WEBHOOK_TOLERANCE_SECONDS).
        Types PGI does not act on give an empty list: acknowledged, nothing changes."""
        if not self._webhook_secret:
            raise WebhookNotConfigured(self.webhook_problem())
        header = _header(headers, SIGNATURE_HEADER) or ""
        if not header.isascii():  # the SDK's compare_digest raises TypeError on other text
            raise InvalidSignature("Stripe signature refused: the header is not ASCII.")
        try:
            stripe.WebhookSignature.verify_header(
                body, header, self._webhook_secret, tolerance=settings.PGI_WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(f"Stripe signature refused: {exc.user_message}") from exc
        except (ValueError, TypeError, IndexError) as exc:  # a body that is not UTF-8, a garbled header
            raise InvalidSignature("Stripe signature refused: the delivery cannot be verified.") from exc
        # Verified: whatever fails from here is a notification PGI cannot read, not a forgery.
        try:
            event = self._client.construct_event_without_verification(body)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:  # not a snapshot event
            raise InvalidNotification("The body is not a Stripe event.") from exc
        try:
            return self._events(event)
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise InvalidNotification(f"The Stripe event {_get(event, 'id')} is not as expected: {exc!r}"[:500]) from exc

    def _events(self, event: Any) -> list[WebhookEvent]:
        event_type = event["type"]
        obj = event["data"]["object"]
        if event_type in PAYMENT_EVENTS:
            operation = PAYMENT_EVENTS[event_type]
            if operation is None:
                operation = Operation.CAPTURE if _get(obj, "capture_method") == "manual" else Operation.AUTHORIZE
            return [
                WebhookEvent(
                    event_id=event["id"],
                    operation=operation,
                    payment_id=_metadata(obj, METADATA_PAYMENT_ID),
                    result=self._payment_result(obj),
                    gateway_reference=obj["id"],
                    raw_type=event_type,
                )
            ]
        if event_type in REFUND_EVENTS:
            return [
                WebhookEvent(
                    event_id=event["id"],
                    operation=Operation.REFUND,
                    payment_id=_metadata(obj, METADATA_PAYMENT_ID),
                    refund_id=_metadata(obj, METADATA_REFUND_ID),
                    refund_result=self._refund_result(obj),
                    gateway_reference=str(_get(obj, "payment_intent") or ""),
                    raw_type=event_type,
                )
            ]
        return []

    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        """Every balance transaction Stripe created on `day` (UTC), all pages, sources expanded.
        Amounts are in the balance's currency (the settlement currency): with currency conversion
        they differ from the payment's own amount and currency."""
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        end = start + datetime.timedelta(days=1)
        params = {
            "created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())},
            "limit": 100,
            "expand": ["data.source"],
        }
        what = f"the report of {day.isoformat()}"
        try:
            transactions = self._send(
                # every page: the SDK follows `has_more` with `starting_after`, keeping the filters
                lambda: list(self._client.v1.balance_transactions.list(params).auto_paging_iter()),  # type: ignore
                what=what,
                writes=False,
            )
        except (stripe.InvalidRequestError, stripe.IdempotencyError) as exc:
            raise GatewayUnavailable(f"{self.code}: Stripe refused {what}: {exc.user_message}") from exc
        payment_ids: dict[str, str] = {}
        # Stripe lists the newest first; the report reads oldest first.
        lines = [self._report_line(transaction, payment_ids) for transaction in reversed(transactions)]
        lines.sort(key=lambda line: line.booked_at)
        return lines

    def _report_line(self, transaction: Any, payment_ids: dict[str, str]) -> ReportLine:
        kind = self._report_kind(transaction)
        currency = str(transaction["currency"]).upper()
        source = _get(transaction, "source")
        source_obj = source if source is not None and not isinstance(source, str) else None
        intent_id = str(_get(source_obj, "payment_intent") or "") if source_obj else ""
        payment_id = _metadata(source_obj, METADATA_PAYMENT_ID) if source_obj else ""
        if not payment_id and intent_id and kind is not ReportLine.Kind.FEE:
            payment_id = self._payment_id_of(intent_id, payment_ids)
        if kind is ReportLine.Kind.PAYMENT or kind is ReportLine.Kind.CHARGEBACK:
            reference = intent_id or _source_id(source) or transaction["id"]
        else:
            reference = _source_id(source) or transaction["id"]
        return ReportLine(
            kind=kind,
            gateway_reference=reference,
            payment_id=payment_id,
            amount=abs(from_minor_units(transaction["amount"], currency)),
            currency=currency,
            booked_at=datetime.datetime.fromtimestamp(transaction["created"], tz=datetime.UTC),
            fee=from_minor_units(transaction["fee"], currency),
            refund_id=_metadata(source_obj, METADATA_REFUND_ID) if kind is ReportLine.Kind.REFUND else "",
            status=str(_get(transaction, "status") or ""),
        )

    @staticmethod
    def _report_kind(transaction: Any) -> ReportLine.Kind:
        kind, category = transaction["type"], _get(transaction, "reporting_category") or ""
        if kind in PAYMENT_TYPES:
            return ReportLine.Kind.PAYMENT
        if kind in REFUND_TYPES:
            return ReportLine.Kind.REFUND
        if category == "dispute" or kind == "dispute":
            return ReportLine.Kind.CHARGEBACK
        if kind in FEE_TYPES or category == "fee":
            return ReportLine.Kind.FEE
        return ReportLine.Kind.OTHER  # dispute reversals, payouts, transfers, partial-capture reversals …

    def _payment_id_of(self, intent_id: str, known: dict[str, str]) -> str:
        """PGI's payment id from a PaymentIntent's metadata (for sources that do not carry it, such as
        disputes); one call per PaymentIntent and report."""
        if intent_id not in known:
            try:
                intent = self._send(
                    lambda: self._client.v1.payment_intents.retrieve(intent_id),
                    what=f"PaymentIntent {intent_id} of the report",
                    writes=False,
                )
            except stripe.InvalidRequestError:
                known[intent_id] = ""
            else:
                known[intent_id] = _metadata(intent, METADATA_PAYMENT_ID)
        return known[intent_id]
