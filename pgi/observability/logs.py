"""Log lines that carry the request id, as JSON (production) or text (`make run`).

PGI_LOG_FORMAT picks the formatter in settings.LOGGING: `json` (the default) writes one JSON object
per line with `time`, `level`, `logger`, `message`, `request_id` when there is one, and whatever
the caller passed in `extra`; `text` writes the classic line with `[request id]` after the logger.
"""

import logging

from pythonjsonlogger.json import JsonFormatter

from . import request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_id_tag)s %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s"
# Attributes the record factory and the filter add for the text format only.
_TEXT_ONLY = ("request_id_tag",)


def _stamp(record: logging.LogRecord) -> None:
    rid = request_id.current()
    record.request_id = rid
    record.request_id_tag = f" [{rid}]" if rid else ""


class RequestIdFilter(logging.Filter):
    """Gives a record the current request id (settings.LOGGING puts it on every handler); the
    record factory has usually done so already, when the record was made in the request's thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id_tag"):
            _stamp(record)
        return True


def request_id_on_every_record() -> None:
    """Install a record factory that stamps each record with the request id when it is made, so that
    every handler (gunicorn's, a test's capture) sees it, not only those settings.LOGGING names."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "pgi_request_id", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _stamp(record)
        return record

    factory.pgi_request_id = True
    logging.setLogRecordFactory(factory)


class PgiJsonFormatter(JsonFormatter):
    """One JSON object per line: `time` (ISO 8601 UTC), `level`, `logger`, `message`, `request_id`
    (left out when the line belongs to no request), the exception's traceback as `exc_info`, and
    the caller's `extra` fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", JSON_FIELDS)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_text:
            # The traceback as the handler's filters left it (pgi.log_filters.RedactCardNumbers
            # masks card numbers in exc_text), not formatted again from exc_info; on a copy, as
            # other handlers may see the record.
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None})
        return super().format(record)

    def process_log_record(self, log_data: dict) -> dict:
        for name in _TEXT_ONLY:
            log_data.pop(name, None)
        if not log_data.get("request_id"):
            log_data.pop("request_id", None)
        # django.request passes the request object itself: its repr names the method and path.
        if "request" in log_data and not isinstance(log_data["request"], (str, int, float, bool, type(None))):
            log_data["request"] = repr(log_data["request"])
        return log_data
