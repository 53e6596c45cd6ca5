from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    name = "gateways"

    def ready(self):
        from . import checks  # noqa: F401 - registers the settings checks
        from . import routing  # noqa: F401 - its receivers forget cached routes on edits
