from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "pgi.webhooks"
    label = "webhooks"
    verbose_name = "Merchant webhooks"

    def ready(self):
        from . import checks  # noqa: F401  registers the deploy check
