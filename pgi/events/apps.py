from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "pgi.events"
    label = "events"

    def ready(self):
        from . import receivers  # noqa: F401  connects the domain signals' receivers
