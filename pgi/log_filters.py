"""Logging filters named in settings.LOGGING."""

import logging
from urllib.parse import unquote_plus

from pgi.cards import has_card_number, redact


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


class RedactCardNumbers(logging.Filter):
    """Replace anything card-shaped (pgi.cards) in a record's message and traceback with its masked
    form, `[card ****1111]`, so that no card number reaches a log, whoever logged it (PGI, Django,
    a library, gunicorn's access line with its query string). A handler's filter: it sees every
    record the handler writes, also those propagated from other loggers.

    A line holding one only once URL-decoded (`?reference=4111+1111+1111+1111`, `%20` or `%34%31…`
    in a path or query string, as gunicorn logs them) is written decoded, with it masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if ("%" in redacted or "+" in redacted) and has_card_number(unquote_plus(redacted)):
            redacted = redact(unquote_plus(redacted))
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def handlers_redact(*loggers: logging.Logger) -> None:
    """Put RedactCardNumbers on every handler of these loggers (once): for handlers set up outside
    settings.LOGGING (Celery's worker, gunicorn's logs)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactCardNumbers) for f in handler.filters):
                handler.addFilter(RedactCardNumbers())
