import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")

app = Celery("pgi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect(weak=False)
def logging_from_django_settings(**kwargs) -> None:
    """Workers and beat log as every PGI process does (settings.LOGGING: JSON or text, with the
    request id), instead of Celery replacing the root logger's handlers with its own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
