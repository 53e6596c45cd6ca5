"""A fake Stripe API on 127.0.0.1, for tests of the Stripe connector and of PGI above it.

It speaks Stripe's v1 wire format: form-encoded requests (`metadata[k]=v`, `expand[0]=…`), Bearer
API keys, the `Idempotency-Key` header, and JSON answers and errors shaped as Stripe documents them
(docs.stripe.com/api/errors): `{"error": {"type", "code", "decline_code", "message", "param",
"payment_intent", …}}`. It keeps its own state (PaymentIntents, Charges, Refunds, BalanceTransactions)
in memory, so tests can look at what the connector really asked for.

    with running_fake_stripe() as fake:
        connector = StripeConnector("stripe", api_key=fake.api_key, webhook_secret=WEBHOOK_SECRET,
                                    api_base=fake.url)
        fake.fail_next(503)          # the next request is answered 503, nothing is done
        fake.delay_next(2.0)         # the next request is done, and its answer comes 2 s late
        fake.drop_next()             # the next request is done, and the connection closes unanswered
        fake.payment_intents[...]    # what Stripe holds

Covered: PaymentIntents create (with `confirm=true`), retrieve, capture (`amount_to_capture`),
cancel and search (`metadata['key']:'value'` only); Refunds create and retrieve; BalanceTransactions
list (`created[gte|gt|lt|lte]`, `starting_after`, `limit`, `expand[]=data.source`).

Idempotency as Stripe documents it (docs.stripe.com/api/idempotent_requests): a POST's result is
saved under its key once the endpoint has begun executing (successes and card declines; not
requests refused by validation, authentication or the rate limiter). The same key again gets the
saved answer with `Idempotent-Replayed: true`; the same key with other parameters or on another
endpoint gets a 400 `idempotency_error`.

Test payment methods (docs.stripe.com/testing), as `payment_method` with `confirm=true`: see CARDS.
`pm_card_authenticationRequired` needs 3-D Secure: `requires_action`, or a 402
`authentication_required` with `error_on_requires_action=true`. Any other `pm_…` is a 400
`resource_missing`.

Also here: `sign_webhook` (the `Stripe-Signature` header, computed as Stripe does, independently of
the SDK), `stripe_event` (an event body around an object), and two ports for transport failures:
`closed_port()` (connection refused) and `port_never_accepting()` (connect timeout).
"""

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

API_KEY = "sk_test_pgi_fake_0123456789"
WEBHOOK_SECRET = "whsec_pgi_fake_0123456789"
API_VERSION = "2026-10-28.endive"


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    decline: tuple[str, str, str] | None = None  # (code, decline_code, message) of the 402
    three_d_secure: bool = False


CARDS: dict[str, Card] = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_visa_debit": Card("visa", "5556"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_amex": Card("amex", "8431"),
    "pm_card_chargeDeclined": Card("visa", "0002", ("card_declined", "generic_decline", "Your card was declined.")),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        "visa", "9995", ("card_declined", "insufficient_funds", "Your card has insufficient funds.")
    ),
    "pm_card_chargeDeclinedLostCard": Card("visa", "9987", ("card_declined", "lost_card", "Your card was declined.")),
    "pm_card_chargeDeclinedStolenCard": Card(
        "visa", "9979", ("card_declined", "stolen_card", "Your card was declined.")
    ),
    "pm_card_chargeDeclinedExpiredCard": Card(
        "visa", "0069", ("expired_card", "expired_card", "Your card has expired.")
    ),
    "pm_card_chargeDeclinedIncorrectCvc": Card(
        "visa", "0127", ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")
    ),
    "pm_card_chargeDeclinedProcessingError": Card(
        "visa",
        "0119",
        (
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ),
    "pm_card_chargeDeclinedFraudulent": Card(
        "visa", "0019", ("card_declined", "fraudulent", "Your card was declined.")
    ),
    "pm_card_chargeDeclinedVelocityLimitExceeded": Card(
        "visa", "6975", ("card_declined", "card_velocity_exceeded", "Your card was declined.")
    ),
    "pm_card_authenticationRequired": Card("visa", "3184", three_d_secure=True),
}
AUTHENTICATION_DECLINE = (
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
SEARCH_QUERY = re.compile(r"^\s*metadata\['((?:[^'\\]|\\.)*)'\]:'((?:[^'\\]|\\.)*)'\s*$")


def sign_webhook(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends with `body`: `t=<unix seconds>,v1=<hex HMAC-SHA256,
    keyed with the endpoint's signing secret, of "<t>.<body>">` (docs.stripe.com/webhooks#verify-manually)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> bytes:
    """The body of a snapshot event (docs.stripe.com/api/events/object) carrying `obj`."""
    return json.dumps(
        {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": new_id("req"), "idempotency_key": None},
            "type": event_type,
        }
    ).encode()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def decode_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's bracket notation into nested dicts and lists: `a[b]=1`, `a[0]=x`, `a[]=y`."""
    root: dict = {}
    for key, value in pairs:
        parts = [key.split("[", 1)[0]] + re.findall(r"\[([^\]]*)\]", key)
        node = root
        for part, following in zip(parts, parts[1:] + [None]):
            if following is None:
                if part == "":
                    node[str(len(node))] = value
                else:
                    node[part] = value
            else:
                if part == "":
                    part = str(len(node))
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


class StripeFailure(Exception):
    """An error answer: HTTP status and Stripe's `error` object."""

    def __init__(self, status: int, error: dict, *, save: bool = False):
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error
        self.save = save  # a result of executing the request: saved under its idempotency key


def invalid_request(message: str, *, code: str | None = None, param: str | None = None, status: int = 400, **more):
    error = {"type": "invalid_request_error", "message": message, **more}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return StripeFailure(status, error)


def no_such(kind: str, ident: str, param: str) -> StripeFailure:
    return invalid_request(f"No such {kind}: '{ident}'", code="resource_missing", param=param, status=404)


@dataclass
class Fault:
    kind: str  # "status", "delay", "drop" or "reshape"
    status: int = 0
    seconds: float = 0.0
    process: bool = False  # run the request before failing (the gateway did the work)
    reshape: Callable[[dict], Any] | None = None  # "reshape": what the answer's body becomes


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict
    headers: dict[str, str]


@dataclass
class FakeStripe:
    url: str = ""
    api_key: str = API_KEY
    payment_intents: dict[str, dict] = field(default_factory=dict)
    charges: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    disputes: dict[str, dict] = field(default_factory=dict)
    balance_transactions: dict[str, dict] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    # Seconds before a new PaymentIntent shows in search (Stripe's search is eventually consistent).
    search_lag: float = 0.0
    # The status new refunds get (card refunds succeed at once in test mode).
    refund_status: str = "succeeded"
    # Largest page of a list, whatever `limit` asks (Stripe: 100), to exercise pagination.
    max_page_size: int = 100
    # When set, the clock for `created` of new objects (unix seconds).
    now: Callable[[], float] = time.time
    _faults: deque = field(default_factory=deque)
    _saved: dict[str, tuple[str, dict, int, dict]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _sequence: int = 0
    _closing: threading.Event = field(default_factory=threading.Event)

    # --- controls -------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, after_processing: bool = False) -> None:
        """Answer the next `times` requests with `status` (429, 500, 503 …) and Stripe's error body.
        By default nothing is done, as when Stripe's front refuses a request. `after_processing`:
        the request is executed first and the error is saved under its idempotency key, as Stripe
        does for a 500 raised inside an endpoint (a replay gets the same 500)."""
        for _ in range(times):
            self._faults.append(Fault("status", status=status, process=after_processing))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Execute the next `times` requests, then wait `seconds` before answering."""
        for _ in range(times):
            self._faults.append(Fault("delay", seconds=seconds, process=True))

    def drop_next(self, times: int = 1, *, after_processing: bool = True) -> None:
        """Close the connection of the next `times` requests without answering (after executing
        them, by default: the answer is lost on the way back)."""
        for _ in range(times):
            self._faults.append(Fault("drop", process=after_processing))

    def reshape_next(self, reshape: Callable[[dict], Any], times: int = 1) -> None:
        """Execute the next `times` requests, then answer 200 with `reshape(answer)` as the body:
        answers of a shape Stripe does not document (a third-party emulator's, a field missing)."""
        for _ in range(times):
            self._faults.append(Fault("reshape", process=True, reshape=reshape))

    def create_payment_intent(self, params: dict) -> dict:
        """A PaymentIntent made as `POST /v1/payment_intents` would, with form values as strings
        (`{"amount": "100", "confirm": "true", …}`), bypassing the connector (objects that PGI did
        not create, or answers that PGI's own parameters never produce). Raises StripeFailure as
        the endpoint would answer."""
        with self._lock:
            try:
                return self._create_intent(params)
            except StripeFailure as failure:
                if failure.status == 402:
                    return failure.error["payment_intent"]
                raise

    def set_status(self, intent_id: str, status: str) -> dict:
        """Move a PaymentIntent to another status, as time or the shopper would."""
        with self._lock:
            intent = self.payment_intents[intent_id]
            intent["status"] = status
            return intent

    def add_balance_transaction(
        self,
        *,
        type: str,
        amount: int,
        currency: str = "usd",
        fee: int = 0,
        source: str | None = None,
        reporting_category: str | None = None,
        created: int | None = None,
        description: str | None = None,
    ) -> dict:
        with self._lock:
            return self._balance_transaction(
                type=type,
                amount=amount,
                currency=currency,
                fee=fee,
                source=source,
                reporting_category=reporting_category or type,
                created=created,
                description=description,
            )

    def add_dispute(self, intent_id: str, *, amount: int | None = None, created: int | None = None) -> dict:
        """A chargeback on a PaymentIntent's charge: a Dispute and its `adjustment` balance transaction."""
        with self._lock:
            intent = self.payment_intents[intent_id]
            amount = intent["amount_received"] if amount is None else amount
            dispute = {
                "id": new_id("dp"),
                "object": "dispute",
                "amount": amount,
                "charge": intent["latest_charge"],
                "currency": intent["currency"],
                "created": self._now() if created is None else created,
                "metadata": {},
                "payment_intent": intent_id,
                "reason": "fraudulent",
                "status": "needs_response",
            }
            self.disputes[dispute["id"]] = dispute
            self._balance_transaction(
                type="adjustment",
                amount=-amount,
                currency=intent["currency"],
                fee=1500,
                source=dispute["id"],
                reporting_category="dispute",
                created=dispute["created"],
                description=f"Chargeback withdrawal for {intent['latest_charge']}",
            )
            return dispute

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # --- HTTP -----------------------------------------------------------------------------

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def answer(self, method: str, target: str, body: bytes, headers: dict[str, str], fault: Fault | None):
        """(status, JSON body, extra headers) for one request."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if method == "POST":
            pairs += parse_qsl(body.decode(), keep_blank_values=True)
        params = decode_form(pairs)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, params, dict(headers)))
        key = headers.get("idempotency-key") if method == "POST" else None

        if fault and fault.kind == "status" and not fault.process:
            return self._fault_answer(fault.status)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Invalid API Key provided: {given[:8]}*****{given[-4:]}"
            return 401, {"error": {"message": message, "type": "invalid_request_error"}}, {}

        with self._lock:
            if key:
                saved = self._saved.get(key)
                if saved:
                    endpoint, saved_params, status, payload = saved
                    if endpoint != f"{method} {path}":
                        return self._idempotency_error(
                            f"Keys for idempotent requests can only be used for the same endpoint they were first "
                            f"used for ('{path}' vs '{endpoint.split(' ', 1)[1]}'). Try using a key other than "
                            f"'{key}' if you meant to execute a different request."
                        )
                    if saved_params != params:
                        return self._idempotency_error(
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{key}' if you meant to execute a different "
                            "request."
                        )
                    return status, payload, {"Idempotent-Replayed": "true"}
            try:
                status, payload = 200, self._route(method, path, params)
                save = True
            except StripeFailure as failure:
                status, payload, save = failure.status, {"error": failure.error}, failure.save
            if fault and fault.kind == "status":  # after processing: Stripe's endpoint failed late
                status, payload, _ = self._fault_answer(fault.status)
                save = True
            payload = json.loads(json.dumps(payload))  # a snapshot: later changes do not alter this answer
            if key and save:
                self._saved[key] = (f"{method} {path}", params, status, payload)
        return status, payload, {}

    def _fault_answer(self, status: int):
        if status == 429:
            error = {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
            }
        elif status == 401:
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_*****0000"}
        elif status == 403:
            error = {
                "type": "invalid_request_error",
                "code": "secret_key_required",
                "message": "The provided key 'rk_test_*****0000' does not have the required permissions for this "
                "endpoint.",
            }
        else:
            error = {"type": "api_error", "message": "An unknown error occurred"}
        return status, {"error": error}, {}

    def _idempotency_error(self, message: str):
        return 400, {"error": {"type": "idempotency_error", "message": message}}, {}

    def _route(self, method: str, path: str, params: dict) -> dict:
        segments = path.strip("/").split("/")
        match method, segments:
            case "POST", ["v1", "payment_intents"]:
                return self._create_intent(params)
            case "GET", ["v1", "payment_intents", "search"]:
                return self._search_intents(params)
            case "GET", ["v1", "payment_intents", intent_id]:
                return self._expand(self._intent(intent_id), params.get("expand", []))
            case "POST", ["v1", "payment_intents", intent_id, "capture"]:
                return self._capture(self._intent(intent_id), params)
            case "POST", ["v1", "payment_intents", intent_id, "cancel"]:
                return self._cancel(self._intent(intent_id), params)
            case "POST", ["v1", "refunds"]:
                return self._create_refund(params)
            case "GET", ["v1", "refunds", refund_id]:
                if refund_id not in self.refunds:
                    raise no_such("refund", refund_id, "id")
                return self.refunds[refund_id]
            case "GET", ["v1", "balance_transactions"]:
                return self._list_balance_transactions(params)
        raise invalid_request(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
            status=404,
        )

    # --- PaymentIntents -------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.now())

    def _intent(self, intent_id: str) -> dict:
        if intent_id not in self.payment_intents:
            raise no_such("payment_intent", intent_id, "intent")
        return self.payment_intents[intent_id]

    def _create_intent(self, params: dict) -> dict:
        amount = _positive_int(params, "amount")
        currency = params.get("currency")
        if not currency:
            raise invalid_request("Missing required param: currency.", code="parameter_missing", param="currency")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid_request(
                f"Invalid capture_method: {capture_method}", code="parameter_invalid_string", param="capture_method"
            )
        confirm = params.get("confirm") == "true"
        payment_method = params.get("payment_method")
        automatic = params.get("automatic_payment_methods") or {}
        if confirm and automatic.get("enabled") == "true" and automatic.get("allow_redirects") != "never":
            if not params.get("return_url"):
                raise invalid_request(
                    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because "
                    "some of these payment methods might redirect your customer off of your page, you must provide "
                    "a `return_url`. If you don't want to accept redirect-based payment methods, set "
                    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` "
                    "to `never` when creating Setup Intents and Payment Intents.",
                    param="return_url",
                )
        card = None
        if payment_method:
            card = CARDS.get(payment_method)
            if card is None:
                raise invalid_request(
                    f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param="payment_method"
                )
        intent = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": (
                {
                    "enabled": automatic.get("enabled") == "true",
                    "allow_redirects": automatic.get("allow_redirects", "always"),
                }
                if automatic
                else None
            ),
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": None,
            "confirmation_method": "automatic",
            "created": self._now(),
            "currency": currency.lower(),
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "next_action": None,
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "status": "requires_confirmation" if payment_method else "requires_payment_method",
        }
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(8)}"
        self.payment_intents[intent["id"]] = intent
        if confirm:
            if card is None:
                raise invalid_request(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                    param="payment_method",
                    payment_intent=intent,
                )
            self._confirm(intent, card, error_on_requires_action=params.get("error_on_requires_action") == "true")
        return intent

    def _confirm(self, intent: dict, card: Card, *, error_on_requires_action: bool) -> None:
        decline = card.decline
        if card.three_d_secure:
            if not error_on_requires_action:
                intent["status"] = "requires_action"
                intent["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                }
                return
            decline = AUTHENTICATION_DECLINE
        charge = self._charge(intent, card, failed=decline is not None)
        intent["latest_charge"] = charge["id"]
        if decline:
            code, decline_code, message = decline
            error = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "charge": charge["id"],
                "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                "payment_method": {"id": intent["payment_method"], "object": "payment_method", "type": "card"},
            }
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = error
            intent["payment_method"] = None
            raise StripeFailure(402, {**error, "payment_intent": intent}, save=True)
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
        else:
            self._settle(intent, charge, intent["amount"])

    def _charge(self, intent: dict, card: Card, *, failed: bool) -> dict:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "balance_transaction": None,
            "captured": False,
            "created": self._now(),
            "currency": intent["currency"],
            "description": intent["description"],
            "failure_code": card.decline[0] if failed and card.decline else None,
            "metadata": dict(intent["metadata"]),  # Stripe copies the PaymentIntent's metadata on confirm
            "paid": not failed,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {"type": "card", "card": {"brand": card.brand, "last4": card.last4}},
            "refunded": False,
            "status": "failed" if failed else "succeeded",
        }
        self.charges[charge["id"]] = charge
        return charge

    def _settle(self, intent: dict, charge: dict, amount: int) -> None:
        intent["status"] = "succeeded"
        intent["amount_received"] = amount
        intent["amount_capturable"] = 0
        charge["captured"] = True
        charge["amount_captured"] = amount
        fee = (amount * 29 + 500) // 1000 + 30  # 2.9 % + 30, in minor units
        transaction = self._balance_transaction(
            type="charge",
            amount=amount,
            currency=intent["currency"],
            fee=fee,
            source=charge["id"],
            reporting_category="charge",
            description=intent["description"],
        )
        charge["balance_transaction"] = transaction["id"]

    def _capture(self, intent: dict, params: dict) -> dict:
        if intent["status"] != "requires_capture":
            raise invalid_request(
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
                payment_intent=intent,
            )
        amount = intent["amount_capturable"]
        if "amount_to_capture" in params:
            amount = _positive_int(params, "amount_to_capture")
        if amount > intent["amount_capturable"]:
            raise invalid_request(
                "The amount to capture must be less than or equal to the capturable amount.",
                code="amount_too_large",
                param="amount_to_capture",
                payment_intent=intent,
            )
        self._settle(intent, self.charges[intent["latest_charge"]], amount)
        return intent

    def _cancel(self, intent: dict, params: dict) -> dict:
        if intent["status"] not in CANCELABLE:
            raise invalid_request(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                f"PaymentIntent with one of the following statuses may be canceled: {', '.join(CANCELABLE)}.",
                code="payment_intent_unexpected_state",
                payment_intent=intent,
            )
        intent["status"] = "canceled"
        intent["canceled_at"] = self._now()
        intent["cancellation_reason"] = params.get("cancellation_reason")
        intent["amount_capturable"] = 0
        return intent

    def _search_intents(self, params: dict) -> dict:
        match = SEARCH_QUERY.match(params.get("query", ""))
        if not match:
            raise invalid_request(
                f"The query `{params.get('query', '')}` could not be parsed (this fake knows only "
                "metadata['key']:'value').",
                code="parameter_invalid_string",
                param="query",
            )
        key, value = (re.sub(r"\\(.)", r"\1", group) for group in match.groups())
        visible_before = self.now() - self.search_lag
        found = [
            intent
            for intent in self.payment_intents.values()
            if intent["metadata"].get(key) == value and intent["created"] <= visible_before
        ]
        found.sort(key=lambda intent: intent["created"], reverse=True)
        limit = int(params.get("limit", 10))
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    # --- Refunds --------------------------------------------------------------------------

    def _create_refund(self, params: dict) -> dict:
        if "payment_intent" in params:
            intent = self.payment_intents.get(params["payment_intent"])
            if intent is None:
                raise no_such("payment_intent", params["payment_intent"], "payment_intent")
            charge = self.charges.get(intent["latest_charge"] or "")
        elif "charge" in params:
            charge = self.charges.get(params["charge"])
            if charge is None:
                raise no_such("charge", params["charge"], "charge")
        else:
            raise invalid_request(
                "One of the following params should be provided for this request: payment_intent or charge."
            )
        if charge is None or not charge["captured"]:
            raise invalid_request(
                "This PaymentIntent does not have a successful charge to refund.", code="charge_not_refundable"
            )
        if params.get("reason") and params["reason"] not in REFUND_REASONS:
            raise invalid_request(
                f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}",
                code="parameter_invalid_string",
                param="reason",
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid_request(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = _positive_int(params, "amount") if "amount" in params else remaining
        if amount > remaining:
            raise invalid_request(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": self._now(),
            "currency": charge["currency"],
            "failure_reason": None,
            "metadata": params.get("metadata") or {},
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": self.refund_status,
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        transaction = self._balance_transaction(
            type="refund",
            amount=-amount,
            currency=charge["currency"],
            fee=0,
            source=refund["id"],
            reporting_category="refund",
            description="REFUND FOR CHARGE",
        )
        refund["balance_transaction"] = transaction["id"]
        self.refunds[refund["id"]] = refund
        return refund

    # --- BalanceTransactions --------------------------------------------------------------

    def _balance_transaction(
        self, *, type, amount, currency, fee, source, reporting_category, created=None, description=None
    ):
        self._sequence += 1
        created = self._now() if created is None else created
        transaction = {
            "id": new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": created + 2 * 86400,
            "created": created,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": (
                [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": "Stripe processing fees",
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else []
            ),
            "net": amount - fee,
            "reporting_category": reporting_category,
            "source": source,
            "status": "pending",
            "type": type,
            "_sequence": self._sequence,
        }
        self.balance_transactions[transaction["id"]] = transaction
        return transaction

    def _list_balance_transactions(self, params: dict) -> dict:
        created = params.get("created") or {}
        if isinstance(created, dict):
            bounds = {op: int(value) for op, value in created.items()}
        else:
            bounds = {"eq": int(created)}
        tests = {
            "gte": lambda c, v: c >= v,
            "gt": lambda c, v: c > v,
            "lt": lambda c, v: c < v,
            "lte": lambda c, v: c <= v,
            "eq": lambda c, v: c == v,
        }
        rows = [
            row
            for row in self.balance_transactions.values()
            if all(tests[op](row["created"], value) for op, value in bounds.items())
        ]
        rows.sort(key=lambda row: (row["created"], row["_sequence"]), reverse=True)  # newest first
        if params.get("starting_after"):
            ids = [row["id"] for row in rows]
            if params["starting_after"] not in ids:
                raise no_such("balance_transaction", params["starting_after"], "starting_after")
            rows = rows[ids.index(params["starting_after"]) + 1 :]
        limit = min(int(params.get("limit", 10)), self.max_page_size)
        page = rows[:limit]
        inner = [path.removeprefix("data.") for path in params.get("expand", []) if path.startswith("data.")]
        return {
            "object": "list",
            "data": [self._expand(row, inner) for row in page],
            "has_more": len(rows) > limit,
            "url": "/v1/balance_transactions",
        }

    def _expand(self, obj: dict, paths: list[str]) -> dict:
        shown = {key: value for key, value in obj.items() if not key.startswith("_")}
        for path in paths:
            head, _, rest = path.partition(".")
            value = shown.get(head)
            if isinstance(value, str):
                target = self._lookup(value)
                if target is None:
                    raise invalid_request(f"This property cannot be expanded ({head}).", param="expand")
                shown[head] = self._expand(target, [rest] if rest else [])
            elif isinstance(value, dict) and rest:
                shown[head] = self._expand(value, [rest])
        return shown

    def _lookup(self, ident: str) -> dict | None:
        for table in (self.payment_intents, self.charges, self.refunds, self.disputes, self.balance_transactions):
            if ident in table:
                return table[ident]
        return None


def _positive_int(params: dict, name: str) -> int:
    raw = params.get(name)
    if raw is None:
        raise invalid_request(f"Missing required param: {name}.", code="parameter_missing", param=name)
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name) from None
    if value < 1:
        raise invalid_request(
            "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param=name
        )
    return value


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = fake.next_fault()
        if fault and fault.kind == "drop" and not fault.process:
            self._drop()
            return
        status, payload, extra = fake.answer(self.command, self.path, body, headers, fault)
        if fault and fault.kind == "drop":
            self._drop()
            return
        if fault and fault.kind == "delay":
            fake.sleep(fault.seconds)
        if fault and fault.kind == "reshape":
            status, payload = 200, fault.reshape(payload)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", new_id("req"))
            self.send_header("Stripe-Version", API_VERSION)
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a read timeout)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe


@contextlib.contextmanager
def running_fake_stripe(**options) -> Iterator[FakeStripe]:
    """A FakeStripe listening on 127.0.0.1 at a free port (`fake.url`, the connector's `api_base`),
    stopped on exit. Keyword options set FakeStripe's fields (`search_lag`, `max_page_size`, …)."""
    fake = FakeStripe(**options)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake._closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A base URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def port_never_accepting() -> Iterator[str]:
    """A base URL whose listener never accepts and whose backlog is full: a new connection is
    neither refused nor established, so the client's connect timeout fires."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(4):  # more than the backlog holds
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            fillers.append(filler)
        time.sleep(0.1)
        yield f"http://{address[0]}:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
