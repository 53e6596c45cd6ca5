from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"

    def ready(self):
        # gateways stores refund notifications and never imports refunds: refunds applies them.
        from gateways.base import Operation
        from gateways.handlers import notification_handler_register

        from .handlers import refund_notification_apply

        notification_handler_register(Operation.REFUND, refund_notification_apply)
