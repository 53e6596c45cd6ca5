from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "pgi.webhooks"
    label = "webhooks"
    verbose_name = "Merchant webhooks"
