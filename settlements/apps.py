from django.apps import AppConfig


class SettlementsConfig(AppConfig):
    name = "settlements"

    def ready(self):
        from . import checks  # noqa: F401  registers the PGI_SETTLEMENT checks

        # payments and refunds never import settlements: their lists take the settlement id from an
        # annotation registered here (one subquery in the list's own query).
        from payments.selectors import payment_annotation_register
        from refunds.selectors import refund_annotation_register

        from .selectors import payment_settlement_id, refund_settlement_id

        payment_annotation_register("settlement_id", payment_settlement_id)
        refund_annotation_register("settlement_id", refund_settlement_id)
