"""Connectors for tests, registered in settings.PGI_GATEWAYS by dotted path."""

import threading
from typing import Mapping

from django.db import connection

from gateways.base import Connector, GatewayResult, GatewayStatus, InvalidWebhook, PaymentRequest, WebhookEvent
from payments.models import Payment


class TransactionProbeConnector(Connector):
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

    def status(self, *, payment_id: str) -> GatewayResult | None:
        return None

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise InvalidWebhook("the probe sends no webhooks")


class BrokenAfterChargingConnector(Connector):
    """Charges, then fails with an unexpected error before answering (a bug in a connector, say)."""

    charged: list[str] = []

    def authorize(self, request: PaymentRequest) -> GatewayResult:
        self.charged.append(request.payment_id)
        raise RuntimeError("connector bug after the charge")

    def status(self, *, payment_id: str) -> GatewayResult | None:
        return GatewayResult(status=GatewayStatus.SUCCEEDED) if payment_id in self.charged else None

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise InvalidWebhook("sends no webhooks")
