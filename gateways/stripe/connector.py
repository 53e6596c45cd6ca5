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
    idempotency_key,
)
from .amounts import AmountNotAccepted, to_minor_units
from .report import report_lines
from .results import (
    METADATA_MERCHANT,
    METADATA_PAYMENT_ID,
    METADATA_REASON,
    METADATA_REFUND_ID,
    METADATA_VALUE_MAX,
    decline,
    metadata_value,
    payment_result,
    refund_result,
    value_of,
)
from .webhooks import webhook_events

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
    return f"{type(cause).__name__}: {clip(text, 200)}" if text else type(cause).__name__


def _search_literal(value: str) -> str:
    """A value as a quoted string of Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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

    def _declined(self, exc: stripe.StripeError, request: PaymentRequest) -> GatewayResult:
        error = exc.error
        intent = value_of(error, "payment_intent") if error else None
        if intent and value_of(intent, "status") not in (None, "requires_payment_method", "requires_confirmation"):
            return payment_result(intent)  # the error came with a PaymentIntent that says otherwise
        code, message = decline(error or {"code": exc.code, "message": exc.user_message})
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
        intent = value_of(exc.error, "payment_intent") if exc.error else None
        if exc.code == "payment_intent_unexpected_state" and intent:
            return dataclasses.replace(
                payment_result(intent),
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
            intent = value_of(exc.error, "payment_intent") if exc.error else None
            return GatewayResult(
                GatewayStatus.DECLINED,
                reference=intent["id"] if intent else "",
                amount=request.amount,
                currency=request.currency,
                error_code=ErrorCode.INVALID_ACCOUNT if unknown_method else ErrorCode.INVALID_REQUEST,
                error_message=exc.user_message or "",
            )
        return payment_result(intent)

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
        return payment_result(intent)

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
            metadata[METADATA_REASON] = clip(request.reason, METADATA_VALUE_MAX)
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
        return refund_result(refund)

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
                return payment_result(intent)
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
        return payment_result(furthest)

    def webhook_problem(self) -> str:
        return "" if self._webhook_secret else "no PGI_STRIPE_WEBHOOK_SECRET is set"

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> Sequence[WebhookEvent]:
        """See webhooks.webhook_events: verified with the endpoint's signing secret."""
        if not self._webhook_secret:
            raise WebhookNotConfigured(self.webhook_problem())
        return webhook_events(self._client, headers=headers, body=body, secret=self._webhook_secret)

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
        return report_lines(transactions, lambda intent_id: self._payment_id_of(intent_id, payment_ids))

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
                known[intent_id] = metadata_value(intent, METADATA_PAYMENT_ID)
        return known[intent_id]
