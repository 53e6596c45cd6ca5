"""Logging filters named in settings.LOGGING."""

import logging


class ClientErrorsAtInfo(logging.Filter):
    """Lower django.request's record of a 4xx answer from WARNING to INFO (5xx keep their level).

    Django logs every 4xx at WARNING, so one client's typos fill the log with lines nobody need
    act on; gunicorn's access log still has each of them. A lowered record is dropped when its
    logger is set above INFO, as it would have been had it been logged at INFO.

    A 403's record also loses its traceback: Django attaches the PermissionDenied it answered,
    whose stack says nothing an operator needs (the line names the path and the status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status == 403:
            record.exc_info, record.exc_text = None, None
        if status is None or not 400 <= status < 500 or record.levelno <= logging.INFO:
            return True
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)
