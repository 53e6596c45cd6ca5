"""The connector interface: what PGI asks of every payment gateway, in plain frozen dataclasses.

Connectors translate between these and their gateway's API; nothing above this layer sees an SDK
object or a raw gateway payload. Every call that can move money carries an idempotency key derived
from PGI's own ids (see `idempotency_key`), so a retry, a recovery or a replay never charges twice.

Two failures, two meanings, and callers must treat them differently:
- GatewayUnavailable: the request did not reach the gateway, or the gateway refused it before doing
  anything (connection refused, DNS, connect timeout, 429, 5xx). Failing over to another gateway is
  safe.
- GatewayTimeout: the request may have been processed (read timeout, connection dropped after the
  request was sent). The outcome is unknown: only the gateway's own answer (status query, webhook,
  a replay with the same idempotency key) may settle it. Never fail over on it.
A decline is not an exception: it is a result with status DECLINED, and it is final.
"""

import dataclasses
import datetime
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence


class GatewayStatus(enum.StrEnum):
    """A payment (or capture, void) as the gateway sees it, normalized."""

    SUCCEEDED = "succeeded"  # captured: money moved
    AUTHORIZED = "authorized"  # funds held, waiting for capture or void
    DECLINED = "declined"  # refused for good; never retried elsewhere
    PENDING = "pending"  # accepted; the outcome comes later by webhook or status query
    CANCELLED = "cancelled"  # the authorization was voided or lapsed; nothing moved


class RefundStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


class Operation(enum.StrEnum):
    """What a call or a notification is about."""

    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    STATUS = "status"


class ErrorCode(enum.StrEnum):
    """Normalized decline and error codes. Connectors map their gateway's codes onto these and keep
    the gateway's own text in `error_message`."""

    DECLINED = "DECLINED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CARD_EXPIRED = "CARD_EXPIRED"
    INVALID_ACCOUNT = "INVALID_ACCOUNT"  # unknown card, account or payment method
    FRAUD_SUSPECTED = "FRAUD_SUSPECTED"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"  # 3-D Secure or similar needed
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INVALID_REQUEST = "INVALID_REQUEST"  # the gateway refused the request's content (4xx)
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"  # our credentials were refused (401/403)
    ALREADY_PROCESSED = "ALREADY_PROCESSED"  # e.g. capture of a captured payment
    GATEWAY_ERROR = "GATEWAY_ERROR"  # anything else the gateway said no to


def idempotency_key(operation: Operation, reference: str) -> str:
    """The idempotency key sent to the gateway: our payment id for the payment itself, and derived
    keys for the follow-up operations of that payment (a refund uses its own refund id)."""
    if operation is Operation.AUTHORIZE or operation is Operation.REFUND:
        return reference
    return f"{reference}-{operation.value}"


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str  # also the idempotency key sent to the gateway: a retry never charges twice
    amount: Decimal
    currency: str
    from_account: str  # a token the gateway knows: card/payment method id, stored method, IBAN
    merchant_code: str
    description: str = ""
    capture: bool = True  # False: authorize only, capture later


@dataclass(frozen=True)
class GatewayResult:
    status: GatewayStatus
    reference: str = ""  # the gateway's id of the payment (PaymentIntent id, pspReference, ...)
    amount: Decimal | None = None
    currency: str = ""
    error_code: str = ""  # an ErrorCode value when declined or refused
    error_message: str = ""


@dataclass(frozen=True)
class CaptureRequest:
    payment_id: str
    gateway_reference: str
    amount: Decimal  # may be less than authorized (partial capture)
    currency: str
    merchant_code: str
    # The key of this capture. Each new capture of a payment gets its own (a second try after the
    # gateway refused the first must not be answered with the first refusal); a re-send of the same
    # capture reuses it. Empty: idempotency_key(Operation.CAPTURE, payment_id).
    idempotency_key: str = ""

    @property
    def key(self) -> str:
        return self.idempotency_key or idempotency_key(Operation.CAPTURE, self.payment_id)


@dataclass(frozen=True)
class VoidRequest:
    payment_id: str
    gateway_reference: str
    amount: Decimal
    currency: str
    merchant_code: str
    idempotency_key: str = ""  # as for CaptureRequest

    @property
    def key(self) -> str:
        return self.idempotency_key or idempotency_key(Operation.VOID, self.payment_id)


@dataclass(frozen=True)
class RefundRequest:
    refund_id: str  # the idempotency key of the refund
    payment_id: str
    gateway_reference: str  # of the payment
    amount: Decimal
    currency: str
    merchant_code: str
    reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    reference: str = ""  # the gateway's id of the refund
    amount: Decimal | None = None
    currency: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    """One notification, verified and decoded.

    `event_id` is the gateway's unique id of the notification (for gateways without one, a stable
    key built from the notification's fields): a repeated delivery carries the same id.
    `payment_id` is PGI's payment id as the gateway echoes it (merchant reference, metadata); it is
    empty when the gateway did not echo one. For a refund, `refund_id` is PGI's refund id and
    `refund_result` the refund's state; otherwise `result` is the payment's state.
    `captured_if_requested`: the gateway captures with the authorization when PGI asked it to, and
    its notice does not say which (Adyen's AUTHORISATION). An `authorized` result then means
    `succeeded` for a payment PGI sent for immediate capture: PGI's own record decides, not a field
    of the notice that its signature may not cover.
    """

    event_id: str
    operation: Operation
    payment_id: str
    result: GatewayResult | None = None
    refund_id: str = ""
    refund_result: RefundResult | None = None
    gateway_reference: str = ""
    raw_type: str = ""  # the gateway's own name of the event, for people reading the log
    captured_if_requested: bool = False


@dataclass(frozen=True)
class ReportLine:
    """One line of a gateway's daily settlement report, normalized.

    Amounts are positive; `kind` says which way the money went. `fee` is what the gateway kept for
    this line, in `currency`, when the report says.
    """

    class Kind(enum.StrEnum):
        PAYMENT = "payment"
        REFUND = "refund"
        CHARGEBACK = "chargeback"
        FEE = "fee"  # a fee not tied to one payment
        OTHER = "other"

    kind: Kind
    gateway_reference: str
    payment_id: str  # PGI's payment id as the gateway reports it; empty when it doesn't
    amount: Decimal
    currency: str
    booked_at: datetime.datetime
    fee: Decimal | None = None
    refund_id: str = ""
    status: str = ""  # the gateway's own word for the line (settled, refunded, ...)


@dataclass(frozen=True)
class WebhookReply:
    """What PGI answers a gateway after accepting a notification, when the gateway wants something
    specific (Adyen wants the text `[accepted]`)."""

    body: bytes
    content_type: str


# Gateways' amounts are far inside this many powers of ten; outside it a value is not an amount.
_AMOUNT_MAX_EXPONENT = 30
# What reading a gateway's answer raises when the answer is not of the shape a connector knows.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError)


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A request header by name, whatever its case ("" when absent): Django's request.headers is
    case-insensitive, the dict a test or a caller passes may not be."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value or ""


def shape_problem(value) -> str:
    """Why a connector's result or event cannot be stored or applied ('' when it can): a text field
    that is not text or holds what PostgreSQL cannot store (NUL, lone surrogates), an enum field of
    another type, an amount that is not a finite Decimal of sane size."""
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if dataclasses.is_dataclass(item):
            problem = shape_problem(item)
            if problem:
                return problem
        elif field.type is str:
            if not isinstance(item, str):
                return f"{field.name} is not text"
            if not _storable_text(item):
                return f"{field.name} holds characters that cannot be stored"
        elif isinstance(field.type, type) and issubclass(field.type, enum.Enum) and not isinstance(item, field.type):
            return f"{field.name} is not a {field.type.__name__}"
        elif field.name == "amount" and item is not None:
            if not isinstance(item, Decimal) or not item.is_finite() or abs(item.adjusted()) > _AMOUNT_MAX_EXPONENT:
                return "amount is not a payment amount"
    return ""


def _storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 escapes can carry
        return False
    return True


class GatewayError(Exception):
    """`counts_for_breaker=False` marks the failure of one call staged on purpose (the simulator's
    per-payment test values): it says nothing about the gateway, so its circuit breaker ignores it."""

    def __init__(self, *args, counts_for_breaker: bool = True):
        super().__init__(*args)
        self.counts_for_breaker = counts_for_breaker


class GatewayUnavailable(GatewayError):
    """The request did not reach the gateway or was refused before processing: safe to retry, and
    safe to fail over to another gateway."""


class GatewayTimeout(GatewayError):
    """No answer in time: the gateway may or may not have processed the request."""


class InvalidWebhook(GatewayError):
    """The notification's signature, timestamp or body is not acceptable."""


class InvalidSignature(InvalidWebhook):
    """The delivery is not proven to come from the gateway: signature, credentials or timestamp."""


class InvalidNotification(InvalidWebhook):
    """The delivery verifies but its body is not a notification PGI can read or store."""


class WebhookNotConfigured(GatewayError):
    """This gateway's webhooks cannot be verified here (no secret, or one that is public)."""


class UnreadableAnswer(GatewayTimeout):
    """The gateway answered, but not in a shape the connector knows. What it did is unknown, as
    after a timeout: recovery asks it later."""


class Connector(ABC):
    """One gateway. Built once per process by the registry from settings.PGI_GATEWAYS; must be
    safe to share between threads. Methods never run inside a database transaction."""

    code: str
    display_name: str = ""
    webhook_reply: WebhookReply | None = None  # None: PGI answers with its JSON receipt
    # How long the gateway remembers an idempotency key. Recovery re-sends a payment with the same
    # key only within this window after the payment was created; later, a re-send could be taken
    # as a new payment, so the payment is flagged for staff instead. None: for ever.
    replay_window: datetime.timedelta | None = None

    @property
    def max_call_seconds(self) -> float:
        """The longest one call may take before it gives up (connect plus read timeout). While a
        request may still be waiting on the gateway, recovery must leave the payment alone."""
        timeout = getattr(self, "timeout", None)
        if timeout is None:
            return 60.0
        return float(timeout) + float(getattr(self, "connect_timeout", 0) or 0)

    def __init__(self, code: str, **options):
        self.code = code
        self.options = options

    @abstractmethod
    def authorize(self, request: PaymentRequest) -> GatewayResult:
        """Charge the payment (or, with capture=False, hold the funds). Idempotent on
        request.payment_id. Raises GatewayUnavailable or GatewayTimeout."""

    @abstractmethod
    def capture(self, request: CaptureRequest) -> GatewayResult:
        """Capture an authorized payment, in full or in part. SUCCEEDED when captured; PENDING when
        the gateway confirms later by webhook. Idempotent on the payment id."""

    @abstractmethod
    def void(self, request: VoidRequest) -> GatewayResult:
        """Release an authorization. CANCELLED when done; PENDING when confirmed later."""

    @abstractmethod
    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund a captured payment, in full or in part. Idempotent on request.refund_id."""

    @abstractmethod
    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        """What the gateway knows of the payment, or None when it has no record of it or offers no
        way to look it up (recovery then re-sends the payment with the same idempotency key, which
        the gateway answers with its first outcome and never charges twice)."""

    def webhook_problem(self) -> str:
        """Why this gateway's webhooks cannot be verified in this deployment ('' when they can):
        PGI then refuses every delivery (503 WEBHOOK_NOT_CONFIGURED) and `check --deploy` fails."""
        return ""

    @abstractmethod
    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> Sequence[WebhookEvent]:
        """Verify and decode one delivery (some gateways batch several notifications in one).
        Raises InvalidSignature when the signature, credentials or timestamp are not acceptable,
        InvalidNotification when a verified body cannot be read."""

    @abstractmethod
    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        """The gateway's settlement report for one day (UTC), normalized. Raises
        GatewayUnavailable when the report cannot be fetched (yet)."""
