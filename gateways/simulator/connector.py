"""The simulator's connector: the calls, answered from its own ledger (SimulatorCharge,
SimulatorRefund), and the outage switch.

Outcomes of `authorize` follow the last four characters of `fromAccount` (codes.py has the table).
Each configured simulator (one per gateway code) keeps its own ledger (SimulatorCharge,
SimulatorRefund rows carrying its code), keyed by PGI's ids, the idempotency keys: a repeated
request returns the first outcome and never charges twice. A simulator can be taken down without a
restart through a switch in the Django cache (`simulator_outage_set`), shared by every process.
"""

import contextlib
import datetime
import decimal
import logging
import time
from decimal import Decimal
from typing import Mapping, Sequence

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from pgi.compiled import insert_rows
from pgi.ids import new_id
from pgi.money import UnknownCurrency, fits_currency, quantize
from pgi.text import clip

from ..base import (
    CaptureRequest,
    Connector,
    ErrorCode,
    GatewayResult,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    ReportLine,
    VoidRequest,
    WebhookEvent,
    WebhookNotConfigured,
)
from .codes import (
    ASYNC_SUFFIX,
    CONNECT_TIMEOUT_SUFFIX,
    DECLINES,
    REFUND_ASYNC,
    REFUND_DECLINED,
    REFUND_TIMEOUT,
    TIMEOUT_SUFFIX,
    UNAVAILABLE_SUFFIX,
    refund_test_value,
)
from .ledger import captured_total, charge_result, refund_result
from .models import SimulatorCharge, SimulatorRefund
from .report import day_bookings, parse_report_csv, report_csv
from .tasks import simulator_refund_webhook_send, simulator_webhook_send
from .webhooks import PUBLIC_SECRETS, SECRET_MIN_LENGTH, sign, webhook_body, webhook_events

logger = logging.getLogger(__name__)

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
    except Exception:  # noqa: BLE001 - a deliberate last resort, see below
        # Every cache backend raises errors of its own (redis, sqlite3, pickling …) and the sandbox
        # must answer whichever it is: logged, then fail open.
        logger.warning("simulator %s: outage switch unreadable; answering as up", code, exc_info=True)
        return False


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
        # A gateway call runs in autocommit, where one INSERT is its own transaction: no BEGIN and
        # COMMIT around it. Inside a transaction (tests call connectors directly), a savepoint keeps
        # a duplicate key from breaking the caller's transaction.
        atomic = transaction.atomic() if transaction.get_connection().in_atomic_block else contextlib.nullcontext()
        try:
            with atomic:
                charge = SimulatorCharge(
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
                insert_rows([charge])
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
                # A pending refund is taken from what remains too: its webhook completes it.
                refunded = charge.refunds.filter(
                    status__in=(SimulatorRefund.Status.SUCCEEDED, SimulatorRefund.Status.PENDING)
                ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
                problem = _amount_problem(request.amount, request.currency)
                if not problem and request.currency != charge.currency:
                    problem = f"The charge is in {charge.currency}, not {request.currency}."
                remaining = captured_total(charge) - refunded
                if not problem and request.amount > remaining:
                    left = quantize(remaining, charge.currency)
                    problem = f"The refund is larger than what remains captured ({left})."
                ending = None if problem else refund_test_value(request.amount, request.currency)
                status, code = SimulatorRefund.Status.SUCCEEDED, ""
                if problem:
                    status, code = SimulatorRefund.Status.FAILED, ErrorCode.INVALID_REQUEST
                elif ending == REFUND_DECLINED:
                    status, code, problem = SimulatorRefund.Status.FAILED, ErrorCode.DECLINED, "The refund was declined."
                elif ending == REFUND_ASYNC:
                    status = SimulatorRefund.Status.PENDING
                refund = SimulatorRefund.objects.create(
                    gateway=self.code,
                    refund_id=request.refund_id,
                    reference=new_id("simr"),
                    charge=charge,
                    amount=request.amount,
                    currency=request.currency,
                    status=status,
                    error_code=code,
                    error_message=clip(problem, 255),
                    reason=clip(request.reason, 255),
                )
                if status == SimulatorRefund.Status.PENDING:
                    reference, gateway, delay = refund.reference, self.code, self.webhook_delay
                    transaction.on_commit(
                        lambda: simulator_refund_webhook_send.apply_async(args=[reference, gateway], countdown=delay)
                    )
        except IntegrityError:
            # The same refund id arrived twice at once: the first one's answer.
            refund = SimulatorRefund.objects.get(gateway=self.code, refund_id=request.refund_id)
            ending = None
        if ending == REFUND_TIMEOUT:
            # The gateway refunded, but its answer never reaches us.
            raise GatewayTimeout(f"{self.code} did not answer for refund {request.refund_id}", counts_for_breaker=False)
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
        """The notification the simulator sends for a charge's state, or for one of its refunds."""
        return webhook_body(charge, refund=refund)

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
        """One event per delivery (webhooks.webhook_events), once a secret is usable."""
        if self.webhook_problem():
            raise WebhookNotConfigured(self.webhook_problem())
        return webhook_events(headers=headers, body=body, secret=self.webhook_secret)

    # the settlement report -----------------------------------------------------------------

    def fee(self, amount: Decimal, currency: str) -> Decimal:
        """The fee the simulator keeps on one report line: fee_percent of the amount plus fee_fixed,
        rounded half up to the currency's digits."""
        with decimal.localcontext() as context:
            # pgi.money.quantize only pads amounts that fit; a fee is rounded, half up as banks do.
            context.rounding = decimal.ROUND_HALF_UP
            return quantize(amount * self.fee_percent / 100 + self.fee_fixed, currency)

    def report_csv(self, day: datetime.date) -> str:
        """The settlement report of one UTC day, in the simulator's CSV format (docs/03-simulator.md):
        a header row, then one line per capture and per refund booked that day, oldest first."""
        return report_csv(day_bookings(code=self.code, day=day), fee=self.fee)

    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        """The day's report, written as the CSV file and read back from it, so the file format is
        what PGI reads."""
        self._answer(f"the report of {day.isoformat()}")
        return parse_report_csv(self.report_csv(day))

