from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self):
        # gateways stores notifications and never imports payments: payments applies its own.
        from gateways.base import Operation
        from gateways.handlers import notification_handler_register

        from .handlers import payment_notification_apply

        # A status notice (no built-in gateway sends one) says the payment's state: applied alike.
        for operation in (Operation.AUTHORIZE, Operation.CAPTURE, Operation.VOID, Operation.STATUS):
            notification_handler_register(operation, payment_notification_apply)
        # Refund notices are the refunds app's (refunds.apps).
