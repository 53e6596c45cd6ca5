"""Connectors for tests, registered in settings.PGI_GATEWAYS by dotted path."""

import datetime
import threading
from typing import Mapping, Sequence

from django.db import connection

from gateways.base import (
    CaptureRequest,
    Connector,
    GatewayResult,
    GatewayStatus,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    ReportLine,
    VoidRequest,
    WebhookEvent,
)
from payments.models import Payment


class AuthorizeOnlyConnector(Connector):
    """A test connector that only takes payments: the other operations are unavailable."""

    def capture(self, request: CaptureRequest) -> GatewayResult:
        raise GatewayUnavailable("this test connector does not capture")

    def void(self, request: VoidRequest) -> GatewayResult:
        raise GatewayUnavailable("this test connector does not void")

    def refund(self, request: RefundRequest) -> RefundResult:
        raise GatewayUnavailable("this test connector does not refund")

    def fetch_report(self, day: datetime.date) -> Sequence[ReportLine]:
        raise GatewayUnavailable("this test connector has no reports")


class TransactionProbeConnector(AuthorizeOnlyConnector):
    """Approves every payment and records, for each authorize call, whether it ran inside a
    transaction and the payment's status as another database connection sees it (committed)."""

    calls: list[dict] = []

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        seen_elsewhere = {}

        def read_committed_status():
            try:
                seen_elsewhere["status"] = Payment.objects.get(pk=request.payment_id).status
            except Payment.DoesNotExist:
                seen_elsewhere["status"] = None
            finally:
                connection.close()

        reader = threading.Thread(target=read_committed_status)
        reader.start()
        reader.join(timeout=30)
        self.calls.append(
            {
                "payment_id": request.payment_id,
                "in_atomic_block": connection.in_atomic_block,
                "committed_status": seen_elsewhere.get("status"),
            }
        )
        assert connection.in_atomic_block is False, "a gateway call must not run inside a transaction"
        return GatewayResult(status=GatewayStatus.SUCCEEDED, reference=f"probe_{request.payment_id}")

    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        return None

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise InvalidWebhook("the probe sends no webhooks")


class BrokenAfterChargingConnector(AuthorizeOnlyConnector):
    """Charges, then fails with an unexpected error before answering (a bug in a connector, say)."""

    charged: list[str] = []

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        self.charged.append(request.payment_id)
        raise RuntimeError("connector bug after the charge")

    def status(self, *, payment_id: str, gateway_reference: str = "") -> GatewayResult | None:
        return GatewayResult(status=GatewayStatus.SUCCEEDED) if payment_id in self.charged else None

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise InvalidWebhook("sends no webhooks")
