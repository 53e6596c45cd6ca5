"""The connector interface: what PGI asks of every payment gateway, in plain frozen dataclasses.

Connectors translate between these and their gateway's API; nothing above this layer sees an SDK
object or a raw gateway payload. Connectors raise GatewayUnavailable when the gateway cannot be
reached (nothing happened there) and GatewayTimeout when the outcome is unknown (something may have
happened there): callers must treat the two differently.
"""

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping


class GatewayStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"  # money moved
    DECLINED = "declined"  # refused for good; never retried elsewhere
    PENDING = "pending"  # accepted; the outcome comes later by webhook or status query


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str  # also the idempotency key sent to the gateway: a retry never charges twice
    amount: Decimal
    currency: str
    from_account: str
    merchant_code: str
    description: str = ""


@dataclass(frozen=True)
class GatewayResult:
    status: GatewayStatus
    reference: str = ""
    amount: Decimal | None = None
    currency: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    payment_id: str
    result: GatewayResult
    raw_type: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class GatewayError(Exception):
    pass


class GatewayUnavailable(GatewayError):
    """The request did not reach the gateway or was refused before processing: safe to retry."""


class GatewayTimeout(GatewayError):
    """No answer in time: the gateway may or may not have processed the request."""


class InvalidWebhook(GatewayError):
    """The notification's signature, timestamp or body is not acceptable."""


class Connector(ABC):
    code: str

    def __init__(self, code: str, **options):
        self.code = code
        self.options = options

    @abstractmethod
    def authorize(self, request: PaymentRequest) -> GatewayResult:
        """Charge the payment (authorize and capture). Raises GatewayUnavailable or GatewayTimeout."""

    @abstractmethod
    def status(self, *, payment_id: str) -> GatewayResult | None:
        """What the gateway knows of the payment, or None if it never received it."""

    @abstractmethod
    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify and decode one notification. Raises InvalidWebhook."""
