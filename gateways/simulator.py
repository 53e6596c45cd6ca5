"""The simulator gateway: the sandbox for merchants and the test double for PGI.

Outcomes are chosen by the last four characters of `fromAccount` (documented in docs/):

| ending | outcome |
|--------|---------|
| 0002   | declined, `DECLINED` |
| 0051   | declined, `INSUFFICIENT_FUNDS` |
| 0408   | the charge goes through at the gateway but the answer times out |
| 0202   | accepted as pending; a signed webhook completes it a little later |
| other  | succeeds |

It keeps its own ledger (SimulatorCharge) keyed by PGI's payment id, the idempotency key, so a
repeated request returns the first outcome and never charges twice.
"""

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Mapping

from django.db import IntegrityError, transaction

from pgi.ids import new_id

from .base import (
    Connector,
    GatewayResult,
    GatewayStatus,
    GatewayTimeout,
    InvalidWebhook,
    PaymentRequest,
    WebhookEvent,
)
from .models import SimulatorCharge

SIGNATURE_HEADER = "Simulator-Signature"

DECLINES = {
    "0002": ("DECLINED", "The issuer declined the payment."),
    "0051": ("INSUFFICIENT_FUNDS", "The account has insufficient funds."),
}
TIMEOUT_SUFFIX = "0408"
ASYNC_SUFFIX = "0202"


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The header value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(*, secret: str, header: str, body: bytes, tolerance: int, now: float | None = None) -> None:
    """Raises InvalidWebhook unless the header signs the body within `tolerance` seconds of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as exc:
        raise InvalidWebhook("Malformed signature header.") from exc
    if abs((now or time.time()) - timestamp) > tolerance:
        raise InvalidWebhook("Signature timestamp is outside the tolerance.")
    expected = sign(secret=secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise InvalidWebhook("Signature does not match.")


MESSAGES = dict(DECLINES.values())


def charge_result(charge: SimulatorCharge) -> GatewayResult:
    return GatewayResult(
        status=GatewayStatus(charge.status),
        reference=charge.reference,
        amount=charge.amount,
        currency=charge.currency,
        error_code=charge.decline_code,
        error_message=MESSAGES.get(charge.decline_code, ""),
    )


class SimulatorConnector(Connector):
    def __init__(self, code: str, *, webhook_secret: str, webhook_delay: float = 2.0, latency: float = 0.0):
        super().__init__(code)
        self.webhook_secret = webhook_secret
        self.webhook_delay = webhook_delay
        self.latency = latency

    def _wait(self) -> None:
        if self.latency:
            time.sleep(self.latency)

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        self._wait()
        suffix = request.from_account[-4:]
        status, decline_code = SimulatorCharge.Status.SUCCEEDED, ""
        if suffix in DECLINES:
            status, decline_code = SimulatorCharge.Status.DECLINED, DECLINES[suffix][0]
        elif suffix == ASYNC_SUFFIX:
            status = SimulatorCharge.Status.PENDING
        charge, created = self._record(request, status, decline_code)
        if created and charge.status == SimulatorCharge.Status.PENDING:
            from .tasks import simulator_webhook_send  # the task module imports this one

            simulator_webhook_send.apply_async(args=[charge.reference], countdown=self.webhook_delay)
        if suffix == TIMEOUT_SUFFIX:
            # The gateway charged, but its answer never reaches us.
            raise GatewayTimeout(f"simulator did not answer for {request.payment_id}")
        return charge_result(charge)

    def _record(self, request: PaymentRequest, status: str, decline_code: str) -> tuple[SimulatorCharge, bool]:
        try:
            with transaction.atomic():
                charge = SimulatorCharge.objects.create(
                    reference=new_id("sim"),
                    idempotency_key=request.payment_id,
                    amount=request.amount,
                    currency=request.currency,
                    account=request.from_account,
                    merchant_code=request.merchant_code,
                    status=status,
                    decline_code=decline_code,
                )
            return charge, True
        except IntegrityError:
            # Same idempotency key: the gateway answers with what it did the first time.
            return SimulatorCharge.objects.get(idempotency_key=request.payment_id), False

    def status(self, *, payment_id: str) -> GatewayResult | None:
        self._wait()
        charge = SimulatorCharge.objects.filter(idempotency_key=payment_id).first()
        return charge_result(charge) if charge else None

    def webhook_body(self, charge: SimulatorCharge) -> bytes:
        """The notification the simulator sends for a charge's current state."""
        payload = {
            "id": new_id("evt"),
            "type": f"charge.{charge.status}",
            "created": int(time.time()),
            "data": {
                "reference": charge.reference,
                "merchantReference": charge.idempotency_key,
                "status": charge.status,
                "amount": str(charge.amount),
                "currency": charge.currency,
                "declineCode": charge.decline_code,
            },
        }
        return json.dumps(payload).encode()

    def signature(self, body: bytes) -> str:
        return sign(secret=self.webhook_secret, timestamp=int(time.time()), body=body)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        from django.conf import settings

        verify(
            secret=self.webhook_secret,
            header=headers.get(SIGNATURE_HEADER, ""),
            body=body,
            tolerance=settings.PGI_WEBHOOK_TOLERANCE_SECONDS,
        )
        try:
            payload = json.loads(body)
            data = payload["data"]
            result = GatewayResult(
                status=GatewayStatus(data["status"]),
                reference=data["reference"],
                amount=Decimal(data["amount"]),
                currency=data["currency"],
                error_code=data.get("declineCode", ""),
                error_message=MESSAGES.get(data.get("declineCode", ""), ""),
            )
            return WebhookEvent(
                event_id=payload["id"], payment_id=data["merchantReference"], result=result, raw_type=payload["type"]
            )
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise InvalidWebhook("The notification body is not a simulator event.") from exc
