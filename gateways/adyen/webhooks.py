"""Adyen's standard notifications: HTTP Basic credentials, each item's HMAC signature, and the event
codes PGI acts on, each dispatched through HANDLERS to a small function that reads it as one
WebhookEvent."""

import base64
import binascii
import hmac
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

import Adyen

from pgi.text import clip

from ..base import (
    ErrorCode,
    GatewayResult,
    GatewayStatus,
    InvalidNotification,
    InvalidSignature,
    Operation,
    RefundResult,
    RefundStatus,
    WebhookEvent,
    header_value,
)
from .amounts import MAX_MINOR_UNITS, from_minor_units
from .codes import REFUSAL_BY_TEXT

logger = logging.getLogger(__name__)


def notification_events(
    *,
    headers: Mapping[str, str],
    body: bytes,
    hmac_key: str,
    webhook_username: str,
    webhook_password: str,
    environment: str,
    merchant_account: str,
) -> list[WebhookEvent]:
    """Adyen's standard notification: `{"live": "false", "notificationItems":
    [{"NotificationRequestItem": {...}}, ...]}`.

    Every item must carry a valid HMAC signature (additionalData.hmacSignature, checked with
    the SDK's is_valid_hmac_notification), and, when webhook_username is set, the request must
    carry those Basic credentials; otherwise InvalidSignature and nothing is returned. Adyen's
    HMAC signs no timestamp and Adyen retries for days, so old eventDates are accepted: the
    event id (pspReference, eventCode, success) lets PGI drop a repeated delivery.

    Items for other merchant accounts and event codes PGI does not act on yield no event.
    """
    basic_auth_check(headers, username=webhook_username, password=webhook_password)
    try:
        payload = json.loads(body, parse_float=Decimal)
        items = [entry["NotificationRequestItem"] for entry in payload["notificationItems"]]
        live = str(payload.get("live", "")).lower()
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # The signatures are inside the body: one that cannot be read cannot be verified.
        raise InvalidSignature("The body is not an Adyen notification; it cannot be verified.") from exc
    if not items or not all(isinstance(item, dict) for item in items):
        raise InvalidSignature("The notification has no items to verify.")
    for item in items:
        hmac_check(item, hmac_key)
    # Verified: whatever fails from here is a notification PGI cannot read, not a forgery.
    if live != ("true" if environment == "live" else "false"):
        raise InvalidNotification(
            f"A notification with live={clip(live, 10)!r} sent to the Adyen {environment} connector."
        )
    events = []
    for item in items:
        if item.get("merchantAccountCode") != merchant_account:
            logger.info("Adyen notification for merchant account %s ignored", item.get("merchantAccountCode"))
            continue
        try:
            event = event_of(item)
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise InvalidNotification("A notification item lacks a field PGI needs.") from exc
        if event is not None:
            events.append(event)
    return events


def basic_auth_check(headers: Mapping[str, str], *, username: str, password: str) -> None:
    """Raises InvalidSignature unless the request carries these Basic credentials (none needed
    when no username is configured)."""
    if not username:
        return
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    given = header_value(headers, "Authorization")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise InvalidSignature("Missing or wrong HTTP Basic credentials.")


def hmac_check(item: dict, hmac_key: str) -> None:
    """Raises InvalidSignature unless the item's hmacSignature signs it with `hmac_key`."""
    additional = item.get("additionalData")
    if not isinstance(additional, dict) or not additional.get("hmacSignature"):
        raise InvalidSignature("A notification item has no HMAC signature.")
    try:
        valid = Adyen.util.is_valid_hmac_notification(item, hmac_key)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, binascii.Error) as exc:
        raise InvalidSignature("A notification item cannot be verified.") from exc
    if not valid:
        raise InvalidSignature("A notification item's HMAC signature does not match.")


@dataclass(frozen=True)
class Item:
    """The fields of one verified notification item that the handlers read.

    Only signed fields (pspReference, originalReference, merchantAccountCode, merchantReference,
    amount, eventCode, success) decide what moves; `reason` and additionalData are not signed and
    only name a refusal's code and text, or pick the kind of a CANCEL_OR_REFUND (a wrong pick names
    nothing it could move: docs/06-gateway-adyen.md)."""

    event_code: Any
    success: bool
    psp_reference: Any
    original_reference: Any
    merchant_reference: Any
    additional: Any
    reason: Any
    amount: Decimal | None
    currency: Any

    @property
    def failed(self) -> str:
        """The message of a failure, with Adyen's reason when it gave one."""
        return f"Adyen: {self.reason}" if self.reason else "Adyen reported a failure."

    def payment(
        self, operation: Operation, status: GatewayStatus, error_code: str = "", message: str = "", **flags
    ) -> WebhookEvent:
        psp_reference = self.psp_reference
        reference = psp_reference if operation is Operation.AUTHORIZE else (self.original_reference or psp_reference)
        result = GatewayResult(
            status=status,
            reference=reference,
            amount=self.amount,
            currency=self.currency,
            error_code=error_code,
            error_message=message,
        )
        return WebhookEvent(
            operation=operation,
            payment_id=self.merchant_reference,
            result=result,
            gateway_reference=reference,
            **self._common(),
            **flags,
        )

    def refund(self, status: RefundStatus, message: str = "") -> WebhookEvent:
        result = RefundResult(
            status=status,
            reference=self.psp_reference,
            amount=self.amount,
            currency=self.currency,
            error_code=ErrorCode.GATEWAY_ERROR if status is RefundStatus.FAILED else "",
            error_message=message,
        )
        # A refund notification names the refund (merchantReference = PGI's refund id) and the
        # payment's pspReference (originalReference), not PGI's payment id.
        return WebhookEvent(
            operation=Operation.REFUND,
            payment_id="",
            refund_id=self.merchant_reference,
            refund_result=result,
            gateway_reference=self.original_reference,
            **self._common(),
        )

    def _common(self) -> dict[str, Any]:
        event_id = f"{self.psp_reference}:{self.event_code}:{'true' if self.success else 'false'}"
        return {"event_id": event_id, "raw_type": self.event_code}


def item_read(item: dict) -> Item:
    """The fields of a notification item. Raises KeyError, ValueError … for one PGI cannot read."""
    event_code = item["eventCode"]
    success = str(item.get("success", "")).lower() == "true"
    psp_reference = item["pspReference"]
    original_reference = item.get("originalReference", "") or ""
    merchant_reference = item.get("merchantReference", "") or ""
    additional = item.get("additionalData") or {}
    reason = item.get("reason", "") or ""
    amount_field = item.get("amount") or {}
    currency = amount_field.get("currency", "")
    value = amount_field.get("value")
    if value is not None and not (isinstance(value, int) and abs(value) < MAX_MINOR_UNITS):
        raise ValueError(f"amount value {clip(str(value), 30)!r}")
    amount = from_minor_units(amount_field.get("value"), currency) if currency else None
    return Item(
        event_code=event_code,
        success=success,
        psp_reference=psp_reference,
        original_reference=original_reference,
        merchant_reference=merchant_reference,
        additional=additional,
        reason=reason,
        amount=amount,
        currency=currency,
    )


def event_of(item: dict) -> WebhookEvent | None:
    """A verified item as a WebhookEvent: its event code's handler, or None for a code PGI does not
    act on. Raises KeyError, ValueError … for an item PGI cannot read."""
    read = item_read(item)
    handler = HANDLERS.get(read.event_code)
    return handler(read) if handler else None


def _authorisation(item: Item) -> WebhookEvent:
    if not item.success:
        error_code = REFUSAL_BY_TEXT.get(item.reason.lower(), ErrorCode.DECLINED)
        return item.payment(Operation.AUTHORIZE, GatewayStatus.DECLINED, error_code, item.reason)
    # Whether it was captured too is what PGI asked (captureDelayHours 0), kept in PGI's
    # record of the payment; the metadata echoed in additionalData is not signed.
    return item.payment(Operation.AUTHORIZE, GatewayStatus.AUTHORIZED, captured_if_requested=True)


def _offer_closed(item: Item) -> WebhookEvent | None:
    # A pending payment the shopper never completed: it lapsed, nothing moved.
    return item.payment(Operation.AUTHORIZE, GatewayStatus.CANCELLED) if item.success else None


def _capture(item: Item) -> WebhookEvent:
    if item.success:
        return item.payment(Operation.CAPTURE, GatewayStatus.SUCCEEDED)
    return _capture_failed(item)


def _capture_failed(item: Item) -> WebhookEvent:
    return item.payment(Operation.CAPTURE, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, item.failed)


def _cancellation(item: Item) -> WebhookEvent:
    if item.success:
        return item.payment(Operation.VOID, GatewayStatus.CANCELLED)
    return item.payment(Operation.VOID, GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR, item.failed)


def _cancel_or_refund(item: Item) -> WebhookEvent | None:
    action = item.additional.get("modification.action", "")
    if action == "refund":
        return item.refund(RefundStatus.SUCCEEDED if item.success else RefundStatus.FAILED, item.reason)
    if action == "cancel":
        return _cancellation(item)
    logger.warning("Adyen CANCEL_OR_REFUND %s without modification.action ignored", item.psp_reference)
    return None


def _refund(item: Item) -> WebhookEvent:
    if item.success:
        return item.refund(RefundStatus.SUCCEEDED, "")
    return item.refund(RefundStatus.FAILED, item.failed)


def _refund_failed(item: Item) -> WebhookEvent:
    return item.refund(RefundStatus.FAILED, item.failed)


def _refunded_reversed(item: Item) -> WebhookEvent:
    return item.refund(RefundStatus.FAILED, "Adyen: the refund was returned.")


# The event codes PGI acts on; any other is acknowledged and changes nothing.
HANDLERS: dict[str, Callable[[Item], WebhookEvent | None]] = {
    "AUTHORISATION": _authorisation,
    "OFFER_CLOSED": _offer_closed,
    "CAPTURE": _capture,
    "CAPTURE_FAILED": _capture_failed,
    "CANCELLATION": _cancellation,
    "CANCEL_OR_REFUND": _cancel_or_refund,
    "REFUND": _refund,
    "REFUND_FAILED": _refund_failed,
    "REFUNDED_REVERSED": _refunded_reversed,
}
