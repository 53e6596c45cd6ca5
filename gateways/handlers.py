"""Who applies a gateway notification: the app that owns its operation, never gateways itself.

gateways verifies, decodes and stores notifications; it imports none of the apps that own payments
or refunds. Each of them registers, from its AppConfig.ready(), the handler for the operations it
owns, as Django apps connect signal receivers. notification_receive calls the handler inside the
transaction that stores the notification: the notification's outcome and the record's move commit
together, or neither does.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

from .base import Operation, WebhookEvent
from .models import GatewayNotification

# handler(gateway=code, event=event) -> (outcome, detail) for the notification's row: a
# GatewayNotification.Outcome value and a detail of at most 255 characters.
NotificationHandler = Callable[..., tuple[str, str]]

_handlers: dict[Operation, NotificationHandler] = {}


def notification_handler_register(operation: Operation, handler: NotificationHandler) -> None:
    """Make `handler` apply the notifications of `operation`. One handler per operation: a second
    one would leave it to import order which app applies a notice. Registering the same again (a
    ready() run twice) changes nothing."""
    current = _handlers.get(operation)
    if current is not None and current is not handler:
        raise ImproperlyConfigured(
            f"{operation.value} notifications are already applied by {current.__module__}.{current.__qualname__}"
        )
    _handlers[operation] = handler


def notification_handler(operation: Operation) -> NotificationHandler | None:
    """The handler registered for `operation`, None when no app applies its notifications."""
    return _handlers.get(operation)


def notification_apply(*, gateway: str, event: WebhookEvent) -> tuple[str, str]:
    """(outcome, detail) for a stored notification: its handler's answer, else `recorded`."""
    handler = notification_handler(event.operation)
    if handler is None:
        return GatewayNotification.Outcome.RECORDED, f"{event.operation.value} notice kept; nothing applies it yet"
    outcome, detail = handler(gateway=gateway, event=event)
    return GatewayNotification.Outcome(outcome), detail
