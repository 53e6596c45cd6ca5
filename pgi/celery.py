import os

import logging

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgi.settings")

app = Celery("pgi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_card_numbers(logger: logging.Logger, **kwargs) -> None:
    """The worker replaces the root logger's handlers with its own: they mask card numbers too."""
    from pgi.log_filters import handlers_redact

    handlers_redact(logger)
