"""The simulator gateway: the sandbox for merchants and the test double for PGI.

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

These values rehearse one payment's failure: 0503, 0504 and 0408 do not count towards the circuit
breaker (a merchant's tests must not take the gateway out for everyone). The outage switch is what
takes a whole simulator down, and its failures count like a real gateway's.

Each configured simulator (one per gateway code) keeps its own ledger (SimulatorCharge,
SimulatorRefund rows carrying its code), keyed by PGI's ids, the idempotency keys: a repeated
request returns the first outcome and never charges twice. A simulator can be taken down without a
restart through a switch in the Django cache (`simulator_outage_set`), shared by every process.
"""

import csv
import datetime
import decimal
import hashlib
import hmac
import io
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence, TextIO

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from pgi.ids import new_id
from pgi.money import UnknownCurrency, fits_currency, quantize

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
    WebhookNotConfigured,
    Operation,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    ReportLine,
    VoidRequest,
    WebhookEvent,
)
from .models import SimulatorCharge, SimulatorRefund

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Simulator-Signature"

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

MESSAGES = {
    ErrorCode.DECLINED: "The issuer declined the payment.",
    ErrorCode.INSUFFICIENT_FUNDS: "The account has insufficient funds.",
    ErrorCode.CARD_EXPIRED: "The card has expired.",
    ErrorCode.FRAUD_SUSPECTED: "The issuer suspects fraud.",
    ErrorCode.LIMIT_EXCEEDED: "The account's limit is exceeded.",
}

Status = SimulatorCharge.Status


# --- outage switch ----------------------------------------------------------------------------


def _outage_key(code: str) -> str:
    return f"pgi:simulator:{code}:outage"


def simulator_outage_set(code: str, down: bool) -> None:
    """Take the simulator with this gateway code down (every call raises GatewayUnavailable) or
    bring it back, for every process that shares the cache. Stays until switched back; raises
    when the cache cannot be written, so the caller knows the switch did not happen."""
    if down:
        cache.set(_outage_key(code), True, timeout=None)
    else:
        cache.delete(_outage_key(code))


def simulator_outage(code: str) -> bool:
    """True while the switch says this simulator is down. A cache that fails reads as "up": a
    sandbox that cannot read its switch answers rather than refuses."""
    try:
        return bool(cache.get(_outage_key(code), False))
    except Exception:  # noqa: BLE001 - any cache backend error; logged, then fail open
        logger.warning("simulator %s: outage switch unreadable; answering as up", code, exc_info=True)
        return False


# --- webhook signatures -----------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The header value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# Secrets printed in PGI's own docs or shipped in older versions: anyone may know them, so a
# simulator configured with one accepts no webhook.
PUBLIC_SECRETS = frozenset({"whsec_simulator_local"})
# Outside the sandbox a shorter secret could be guessed: webhooks are refused, as check --deploy says.
SECRET_MIN_LENGTH = 32
# Unix seconds fit in 12 digits until the year 33658; longer `t` values are not timestamps.
_MAX_TIMESTAMP_DIGITS = 12


def verify(*, secret: str, header: str, body: bytes, tolerance: int, now: float | None = None) -> None:
    """Raises InvalidSignature unless the header signs the body within `tolerance` seconds of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        raw_timestamp, given = parts["t"].strip(), parts["v1"].strip()
        if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS:
            raise ValueError("t is not a unix timestamp")
        timestamp = int(raw_timestamp)
        given_bytes = given.encode("ascii")
    except (KeyError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidSignature("Malformed signature header.") from exc
    if abs((now or time.time()) - timestamp) > tolerance:
        raise InvalidSignature("Signature timestamp is outside the tolerance.")
    expected = sign(secret=secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected.encode("ascii"), given_bytes):
        raise InvalidSignature("Signature does not match.")


# Event types: the operation each one reports and the status its body must carry.
EVENTS: dict[str, tuple[Operation, str]] = {
    "charge.pending": (Operation.AUTHORIZE, Status.PENDING),
    "charge.authorized": (Operation.AUTHORIZE, Status.AUTHORIZED),
    "charge.succeeded": (Operation.AUTHORIZE, Status.SUCCEEDED),  # authorized and captured at once
    "charge.declined": (Operation.AUTHORIZE, Status.DECLINED),
    "charge.captured": (Operation.CAPTURE, Status.SUCCEEDED),  # captured by a capture call
    "charge.cancelled": (Operation.VOID, Status.CANCELLED),
    "refund.succeeded": (Operation.REFUND, SimulatorRefund.Status.SUCCEEDED),
    "refund.failed": (Operation.REFUND, SimulatorRefund.Status.FAILED),
}


def charge_event_type(charge: SimulatorCharge) -> str:
    """The event type of a charge's current state."""
    if charge.status == Status.SUCCEEDED and not charge.capture:
        return "charge.captured"
    return f"charge.{charge.status}"


def _text(mapping: Mapping, key: str, default: str | None = None) -> str:
    value = mapping[key] if default is None else mapping.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _event(payload: Mapping) -> WebhookEvent:
    """A decoded event body as a WebhookEvent. Raises KeyError, ValueError or TypeError when it is
    not one: an unknown type, a status that does not fit the type, a field missing or mistyped."""
    event_type, data = _text(payload, "type"), payload["data"]
    operation, status = EVENTS[event_type]
    if _text(data, "status") != status:
        raise ValueError(f"status {data['status']!r} in a {event_type} event")
    amount = Decimal(_text(data, "amount"))
    if not amount.is_finite():
        raise ValueError(f"amount {data['amount']!r}")
    code = _text(data, "declineCode", "")
    if operation is Operation.REFUND:
        return WebhookEvent(
            event_id=_text(payload, "id"),
            operation=operation,
            payment_id=_text(data, "merchantReference"),
            refund_id=_text(data, "refundReference"),
            refund_result=RefundResult(
                status=RefundStatus(status),
                reference=_text(data, "reference"),
                amount=amount,
                currency=_text(data, "currency"),
                error_code=code,
                error_message=_text(data, "declineMessage", ""),
            ),
            gateway_reference=_text(data, "chargeReference"),
            raw_type=event_type,
        )
    return WebhookEvent(
        event_id=_text(payload, "id"),
        operation=operation,
        payment_id=_text(data, "merchantReference"),
        result=GatewayResult(
            status=GatewayStatus(status),
            reference=_text(data, "reference"),
            amount=amount,
            currency=_text(data, "currency"),
            error_code=code,
            error_message=MESSAGES.get(code, ""),
        ),
        gateway_reference=_text(data, "reference"),
        raw_type=event_type,
    )


# --- ledger to results ------------------------------------------------------------------------


def captured_total(charge: SimulatorCharge) -> Decimal:
    """What the charge captured: nothing unless it succeeded; its whole amount when a row says
    succeeded without a captured amount (set by hand, as tests do)."""
    if charge.status != Status.SUCCEEDED:
        return Decimal(0)
    return charge.amount if charge.captured_amount is None else charge.captured_amount


def charge_result(charge: SimulatorCharge) -> GatewayResult:
    """The charge as the gateway reports it; a captured charge reports the captured amount."""
    return GatewayResult(
        status=GatewayStatus(charge.status),
        reference=charge.reference,
        amount=captured_total(charge) if charge.status == Status.SUCCEEDED else charge.amount,
        currency=charge.currency,
        error_code=charge.decline_code,
        error_message=MESSAGES.get(charge.decline_code, ""),
    )


def refund_result(refund: SimulatorRefund) -> RefundResult:
    return RefundResult(
        status=RefundStatus(refund.status),
        reference=refund.reference,
        amount=refund.amount,
        currency=refund.currency,
        error_code=refund.error_code,
        error_message=refund.error_message,
    )


def _amount_problem(amount: Decimal, currency: str) -> str:
    """Why the simulator refuses an amount in a currency, or "" when it takes it."""
    try:
        if not amount.is_finite() or amount <= 0:
            return "The amount must be greater than zero."
        if not fits_currency(amount, currency):
            return f"The amount has more decimals than {currency} allows."
    except UnknownCurrency:
        return f"{currency!r} is not a currency the simulator takes."
    return ""


def _refused(reference: str, amount: Decimal, currency: str, code: ErrorCode, message: str) -> GatewayResult:
    return GatewayResult(
        GatewayStatus.DECLINED,
        reference=reference,
        amount=amount,
        currency=currency,
        error_code=code,
        error_message=message,
    )


# --- the settlement report --------------------------------------------------------------------

REPORT_COLUMNS = (
    "record_type",
    "simulator_reference",
    "merchant_reference",
    "refund_reference",
    "amount",
    "currency",
    "fee",
    "booked_at",
    "status",
)
REPORT_KINDS = {"capture": ReportLine.Kind.PAYMENT, "refund": ReportLine.Kind.REFUND}
REPORT_STATUSES = {"capture": "settled", "refund": "refunded"}
_BOOKED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class ReportFormatError(ValueError):
    """A file that is not a simulator settlement report (header, column count, or a value)."""


def _booked_at(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(_BOOKED_AT_FORMAT)


def parse_report_csv(text: str) -> list[ReportLine]:
    """The lines of a simulator settlement report, as written by `SimulatorConnector.report_csv`.
    Raises ReportFormatError on anything else."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != REPORT_COLUMNS:
        raise ReportFormatError(f"The header is not {','.join(REPORT_COLUMNS)}.")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(REPORT_COLUMNS):
            raise ReportFormatError(f"Line {number} has {len(row)} fields, not {len(REPORT_COLUMNS)}.")
        record = dict(zip(REPORT_COLUMNS, row))
        try:
            booked_at = datetime.datetime.strptime(record["booked_at"], _BOOKED_AT_FORMAT).replace(tzinfo=datetime.UTC)
            lines.append(
                ReportLine(
                    kind=REPORT_KINDS[record["record_type"]],
                    gateway_reference=record["simulator_reference"],
                    payment_id=record["merchant_reference"],
                    amount=Decimal(record["amount"]),
                    currency=record["currency"],
                    booked_at=booked_at,
                    fee=Decimal(record["fee"]),
                    refund_id=record["refund_reference"],
                    status=record["status"],
                )
            )
        except (KeyError, ValueError, decimal.InvalidOperation) as exc:
            raise ReportFormatError(f"Line {number} is not a report line: {exc!r}") from exc
    return lines


def _decimal_option(name: str, value) -> Decimal:
    """A fee option as a Decimal. Raises ImproperlyConfigured for a float (fees are money: a float
    would smuggle binary rounding into every fee), a negative number or something else."""
    if isinstance(value, float):
        raise ImproperlyConfigured(f"simulator option {name} must be a Decimal string such as '1.4', not a float")
    try:
        number = Decimal(value)
    except (decimal.InvalidOperation, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"simulator option {name} is not a number: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise ImproperlyConfigured(f"simulator option {name} must be a number of at least 0, not {value!r}")
    return number


@dataclass(frozen=True)
class _Booking:
    """One report line before it is written."""

    record_type: str
    reference: str
    payment_id: str
    refund_id: str
    amount: Decimal
    currency: str
    booked_at: datetime.datetime


# --- the connector ----------------------------------------------------------------------------


class SimulatorConnector(Connector):
    """Options (settings.PGI_GATEWAYS): `webhook_secret`; `webhook_delay` (seconds before the
    webhook of a …0202 charge); `latency` (seconds slept before every answer); `outage` (True: down
    for good, whatever the switch says); `fee_percent` and `fee_fixed` (Decimal strings: the fee
    on each line of the settlement report)."""

    display_name = "Simulator"

    @property
    def max_call_seconds(self) -> float:
        return self.latency + 5.0

    def __init__(
        self,
        code: str,
        *,
        webhook_secret: str,
        webhook_delay: float = 2.0,
        latency: float = 0.0,
        outage: bool = False,
        fee_percent: str | Decimal = "1.4",
        fee_fixed: str | Decimal = "0.25",
    ):
        super().__init__(
            code,
            webhook_secret=webhook_secret,
            webhook_delay=webhook_delay,
            latency=latency,
            outage=outage,
            fee_percent=fee_percent,
            fee_fixed=fee_fixed,
        )
        self.webhook_secret = webhook_secret
        self.webhook_delay = webhook_delay
        self.latency = latency
        self.outage = outage
        self.fee_percent = _decimal_option("fee_percent", fee_percent)
        self.fee_fixed = _decimal_option("fee_fixed", fee_fixed)

    def _answer(self, what: str) -> None:
        """Before every answer: wait the configured latency, then refuse while down."""
        if self.latency:
            time.sleep(self.latency)
        if self.outage or simulator_outage(self.code):
            raise GatewayUnavailable(f"{self.code} is down (simulated outage); {what} not processed")

    def _charges(self):
        return SimulatorCharge.objects.filter(gateway=self.code)

    # authorize ------------------------------------------------------------------------------

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        self._answer(f"authorize {request.payment_id}")
        suffix = request.from_account[-4:]
        if suffix == UNAVAILABLE_SUFFIX:
            raise GatewayUnavailable(
                f"{self.code} answered 503 to authorize {request.payment_id}; nothing charged", counts_for_breaker=False
            )
        if suffix == CONNECT_TIMEOUT_SUFFIX:
            raise GatewayUnavailable(
                f"{self.code}: connect timeout on authorize {request.payment_id}; nothing sent", counts_for_breaker=False
            )
        problem = _amount_problem(request.amount, request.currency)
        if problem:
            # Refused before anything happened: nothing recorded, so a corrected retry can go through.
            return _refused("", request.amount, request.currency, ErrorCode.INVALID_REQUEST, problem)
        status, decline_code = (Status.SUCCEEDED if request.capture else Status.AUTHORIZED), ""
        if suffix in DECLINES:
            status, decline_code = Status.DECLINED, DECLINES[suffix]
        elif suffix == ASYNC_SUFFIX:
            status = Status.PENDING
        charge, created = self._record(request, status, decline_code)
        if created and charge.status == Status.PENDING:
            from .tasks import simulator_webhook_send  # the task module imports this one

            reference, code, delay = charge.reference, self.code, self.webhook_delay
            transaction.on_commit(
                lambda: simulator_webhook_send.apply_async(args=[reference, code], countdown=delay)
            )
        if suffix == TIMEOUT_SUFFIX:
            # The gateway charged, but its answer never reaches us.
            raise GatewayTimeout(f"{self.code} did not answer for {request.payment_id}", counts_for_breaker=False)
        return charge_result(charge)

    def _record(self, request: PaymentRequest, status: str, decline_code: str) -> tuple[SimulatorCharge, bool]:
        captured = status == Status.SUCCEEDED
        try:
            with transaction.atomic():
                charge = SimulatorCharge.objects.create(
                    gateway=self.code,
                    reference=new_id("sim"),
                    idempotency_key=request.payment_id,
                    amount=request.amount,
                    currency=request.currency,
                    account=request.from_account,
                    merchant_code=request.merchant_code,
                    capture=request.capture,
                    status=status,
                    decline_code=decline_code,
                    captured_amount=request.amount if captured else None,
                    captured_at=timezone.now() if captured else None,
                )
            return charge, True
        except IntegrityError:
            # Same idempotency key: the gateway answers with what it did the first time.
            return self._charges().get(idempotency_key=request.payment_id), False

    # capture and void -----------------------------------------------------------------------

    def _locked_charge(self, payment_id: str, gateway_reference: str) -> SimulatorCharge | None:
        """The payment's charge, locked for the rest of the transaction; None when this simulator
        has none, or the reference names another one."""
        charge = self._charges().select_for_update().filter(idempotency_key=payment_id).first()
        if charge is None or (gateway_reference and gateway_reference != charge.reference):
            return None
        return charge

    def capture(self, request: CaptureRequest) -> GatewayResult:
        """Capture an authorized charge in full or in part (SUCCEEDED, with the captured amount).
        A repeated capture of the same payment (same idempotency key) gets the first capture's
        answer. Refusals are DECLINED results and record nothing, as a gateway saves no
        idempotent result for a request it refused before acting on it."""
        self._answer(f"capture {request.payment_id}")
        with transaction.atomic():
            charge = self._locked_charge(request.payment_id, request.gateway_reference)
            if charge is None:
                return _refused(
                    request.gateway_reference, request.amount, request.currency, ErrorCode.INVALID_REQUEST,
                    f"No charge {request.gateway_reference or request.payment_id} at {self.code}.",
                )
            if charge.status == Status.SUCCEEDED and not charge.capture:
                return charge_result(charge)  # captured by an earlier capture: its answer again
            if charge.status != Status.AUTHORIZED:
                return _refused(
                    charge.reference, request.amount, request.currency, ErrorCode.ALREADY_PROCESSED,
                    f"The charge is {charge.status}; only an authorized charge can be captured.",
                )
            problem = _amount_problem(request.amount, request.currency)
            if not problem and request.currency != charge.currency:
                problem = f"The charge is in {charge.currency}, not {request.currency}."
            if not problem and request.amount > charge.amount:
                problem = f"The capture is larger than the authorized {quantize(charge.amount, charge.currency)}."
            if problem:
                return _refused(charge.reference, request.amount, request.currency, ErrorCode.INVALID_REQUEST, problem)
            charge.status = Status.SUCCEEDED
            charge.captured_amount = request.amount
            charge.captured_at = timezone.now()
            charge.save(update_fields=["status", "captured_amount", "captured_at", "updated_at"])
        return charge_result(charge)

    def void(self, request: VoidRequest) -> GatewayResult:
        """Release an authorized charge: CANCELLED. A repeated void gets CANCELLED again; a charge
        that is not authorized is DECLINED with ALREADY_PROCESSED."""
        self._answer(f"void {request.payment_id}")
        with transaction.atomic():
            charge = self._locked_charge(request.payment_id, request.gateway_reference)
            if charge is None:
                return _refused(
                    request.gateway_reference, request.amount, request.currency, ErrorCode.INVALID_REQUEST,
                    f"No charge {request.gateway_reference or request.payment_id} at {self.code}.",
                )
            if charge.status == Status.CANCELLED:
                return charge_result(charge)
            if charge.status != Status.AUTHORIZED:
                return _refused(
                    charge.reference, charge.amount, charge.currency, ErrorCode.ALREADY_PROCESSED,
                    f"The charge is {charge.status}; only an authorized charge can be voided.",
                )
            charge.status = Status.CANCELLED
            charge.save(update_fields=["status", "updated_at"])
        return charge_result(charge)

    # refunds -------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund up to what remains captured (captured minus refunds that succeeded). Idempotent on
        request.refund_id: a refund id seen before gets its first answer, refused ones included.
        A refund of a charge this simulator does not have is FAILED and recorded nowhere."""
        self._answer(f"refund {request.refund_id}")
        existing = SimulatorRefund.objects.filter(gateway=self.code, refund_id=request.refund_id).first()
        if existing is not None:
            return refund_result(existing)
        try:
            with transaction.atomic():
                charge = self._locked_charge(request.payment_id, request.gateway_reference)
                if charge is None:
                    return RefundResult(
                        RefundStatus.FAILED,
                        amount=request.amount,
                        currency=request.currency,
                        error_code=ErrorCode.INVALID_REQUEST,
                        error_message=f"No charge {request.gateway_reference or request.payment_id} at {self.code}.",
                    )
                # Refunds of one charge are serialized by the charge's row lock, so two at once
                # cannot both take the same remainder.
                refunded = charge.refunds.filter(status=SimulatorRefund.Status.SUCCEEDED).aggregate(
                    total=Sum("amount")
                )["total"] or Decimal(0)
                problem = _amount_problem(request.amount, request.currency)
                if not problem and request.currency != charge.currency:
                    problem = f"The charge is in {charge.currency}, not {request.currency}."
                remaining = captured_total(charge) - refunded
                if not problem and request.amount > remaining:
                    left = quantize(remaining, charge.currency)
                    problem = f"The refund is larger than what remains captured ({left})."
                refund = SimulatorRefund.objects.create(
                    gateway=self.code,
                    refund_id=request.refund_id,
                    reference=new_id("simr"),
                    charge=charge,
                    amount=request.amount,
                    currency=request.currency,
                    status=SimulatorRefund.Status.FAILED if problem else SimulatorRefund.Status.SUCCEEDED,
                    error_code=ErrorCode.INVALID_REQUEST if problem else "",
                    error_message=problem[:255],
                    reason=request.reason[:255],
                )
        except IntegrityError:
            # The same refund id arrived twice at once: the first one's answer.
            refund = SimulatorRefund.objects.get(gateway=self.code, refund_id=request.refund_id)
        return refund_result(refund)

    # status --------------------------------------------------------------------------------

    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        self._answer(f"status of {payment_id}")
        query = Q(idempotency_key=payment_id)
        if gateway_reference:
            query |= Q(reference=gateway_reference)
        charge = self._charges().filter(query).order_by("-created_at").first()
        return charge_result(charge) if charge else None

    # webhooks ------------------------------------------------------------------------------

    def webhook_body(self, charge: SimulatorCharge, *, refund: SimulatorRefund | None = None) -> bytes:
        """The notification the simulator sends for a charge's current state, or for one of its
        refunds. The event id names the charge (or refund) and the event type, so a repeated
        delivery of one event carries one id."""
        if refund is not None:
            event_type, subject = f"refund.{refund.status}", refund
            data = {
                "reference": refund.reference,
                "chargeReference": charge.reference,
                "merchantReference": charge.idempotency_key,
                "refundReference": refund.refund_id,
                "status": refund.status,
                "amount": str(quantize(refund.amount, refund.currency)),
                "currency": refund.currency,
                "declineCode": refund.error_code,
                "declineMessage": refund.error_message,
            }
        else:
            event_type, subject = charge_event_type(charge), charge
            result = charge_result(charge)
            data = {
                "reference": charge.reference,
                "merchantReference": charge.idempotency_key,
                "status": charge.status,
                "amount": str(quantize(result.amount, charge.currency)),
                "currency": charge.currency,
                "declineCode": charge.decline_code,
            }
        payload = {
            "id": f"evt_{subject.reference}.{event_type}",
            "type": event_type,
            "created": int(time.time()),
            "data": data,
        }
        return json.dumps(payload).encode()

    def signature(self, body: bytes) -> str:
        return sign(secret=self.webhook_secret, timestamp=int(time.time()), body=body)

    def webhook_problem(self) -> str:
        """Why webhooks are refused (503), or ''. `check --deploy` reports the same (pgi.E010)."""
        if not self.webhook_secret:
            return "no PGI_SIMULATOR_WEBHOOK_SECRET is set"
        if self.webhook_secret in PUBLIC_SECRETS:
            return "PGI_SIMULATOR_WEBHOOK_SECRET is a value printed in PGI's documentation"
        if not settings.PGI_SANDBOX and len(self.webhook_secret) < SECRET_MIN_LENGTH:
            return f"PGI_SIMULATOR_WEBHOOK_SECRET is shorter than {SECRET_MIN_LENGTH} characters"
        return ""

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> Sequence[WebhookEvent]:
        """One event per delivery. Raises InvalidSignature for a bad or stale signature, and
        InvalidNotification for a body that is not a simulator event, an unknown event type, or a
        status that does not fit the type."""
        if self.webhook_problem():
            raise WebhookNotConfigured(self.webhook_problem())
        verify(
            secret=self.webhook_secret,
            header=headers.get(SIGNATURE_HEADER, ""),
            body=body,
            tolerance=settings.PGI_WEBHOOK_TOLERANCE_SECONDS,
        )
        try:
            return [_event(json.loads(body))]
        except (KeyError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
            raise InvalidNotification(f"The notification body is not a simulator event: {exc!r}"[:500]) from exc

    # the settlement report -----------------------------------------------------------------

    def fee(self, amount: Decimal, currency: str) -> Decimal:
        """The fee the simulator keeps on one report line: fee_percent of the amount plus fee_fixed,
        rounded half up to the currency's digits."""
        with decimal.localcontext() as context:
            # pgi.money.quantize only pads amounts that fit; a fee is rounded, half up as banks do.
            context.rounding = decimal.ROUND_HALF_UP
            return quantize(amount * self.fee_percent / 100 + self.fee_fixed, currency)

    def _bookings(self, day: datetime.date) -> list[_Booking]:
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        end = start + datetime.timedelta(days=1)
        captured = self._charges().filter(status=Status.SUCCEEDED, captured_at__gte=start, captured_at__lt=end)
        refunded = SimulatorRefund.objects.filter(
            gateway=self.code, status=SimulatorRefund.Status.SUCCEEDED, created_at__gte=start, created_at__lt=end
        ).select_related("charge")
        bookings = [
            _Booking(
                record_type="capture",
                reference=charge.reference,
                payment_id=charge.idempotency_key,
                refund_id="",
                amount=captured_total(charge),
                currency=charge.currency,
                booked_at=charge.captured_at,
            )
            for charge in captured
        ]
        bookings += [
            _Booking(
                record_type="refund",
                reference=refund.reference,
                payment_id=refund.charge.idempotency_key,
                refund_id=refund.refund_id,
                amount=refund.amount,
                currency=refund.currency,
                booked_at=refund.created_at,
            )
            for refund in refunded
        ]
        bookings.sort(key=lambda booking: (booking.booked_at, booking.reference))
        return bookings

    def report_csv(self, day: datetime.date) -> str:
        """The settlement report of one UTC day, in the simulator's CSV format (docs/03-simulator.md):
        a header row, then one line per capture and per refund booked that day, oldest first."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        for booking in self._bookings(day):
            writer.writerow(
                [
                    booking.record_type,
                    booking.reference,
                    booking.payment_id,
                    booking.refund_id,
                    quantize(booking.amount, booking.currency),
                    booking.currency,
                    self.fee(booking.amount, booking.currency),
                    _booked_at(booking.booked_at),
                    REPORT_STATUSES[booking.record_type],
                ]
            )
        return out.getvalue()

    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        """The day's report, written as the CSV file and read back from it, so the file format is
        what PGI reads."""
        self._answer(f"the report of {day.isoformat()}")
        return parse_report_csv(self.report_csv(day))


def simulator_charge_complete(*, code: str, reference: str) -> SimulatorCharge:
    """The simulator settles a pending charge: authorized when it was sent with capture=False, else
    captured in full. Conditional updates, so a retry or a second worker changes nothing. Returns
    the charge as it is now; raises SimulatorCharge.DoesNotExist for an unknown reference."""
    charges = SimulatorCharge.objects.filter(gateway=code, reference=reference)
    now = timezone.now()
    pending = charges.filter(status=Status.PENDING)
    pending.filter(capture=False).update(status=Status.AUTHORIZED, updated_at=now)
    pending.filter(capture=True).update(
        status=Status.SUCCEEDED, captured_amount=F("amount"), captured_at=now, updated_at=now
    )
    return charges.get()


def simulator_report_write(*, code: str, day: datetime.date, out: TextIO) -> int:
    """Write the settlement report of the simulator with this gateway code for one UTC day to
    `out`; returns the number of lines below the header. Raises LookupError (UnknownGateway) for
    an unknown code and TypeError for a gateway that is not a simulator."""
    from .registry import get_connector  # the registry builds connectors from this module

    connector = get_connector(code)
    if not isinstance(connector, SimulatorConnector):
        raise TypeError(f"{code} is not a simulator gateway")
    text = connector.report_csv(day)
    out.write(text)
    return text.count("\n") - 1
