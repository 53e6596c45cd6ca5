from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "pgi.observability"
    label = "observability"
    verbose_name = "Observability"

    def ready(self):
        from . import celery_signals, logs, middleware  # noqa: F401  (middleware: its request_finished receiver)

        logs.request_id_on_every_record()
        celery_signals.connect()
