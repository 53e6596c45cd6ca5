from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """/metrics: PGI's figures for Prometheus. A listener above the domain apps, as pgi/events is:
    it counts their outcomes from their signals and reads their tables, and none of them knows it."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from . import receivers  # noqa: F401  connects the outcome counters to the domain signals
