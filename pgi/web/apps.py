from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "pgi.web"
    label = "web"
    verbose_name = "Web pages"

    def ready(self):
        from . import checks  # noqa: F401  (registers the deploy checks)
