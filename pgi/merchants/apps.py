from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "pgi.merchants"
    label = "merchants"

    def ready(self):
        from . import receivers  # noqa: F401 - forgets cached lookups on edits
