from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "pgi.web"
    label = "web"
    verbose_name = "Web pages"

    def ready(self):
        from pgi import choices_dumpers, prepared_statements, timestamps

        from . import checks  # noqa: F401  (registers the deploy checks)

        prepared_statements.install()  # every process loads this app: web, Celery, commands
        timestamps.install()
        choices_dumpers.install()
