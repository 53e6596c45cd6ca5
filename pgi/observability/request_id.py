"""The request id: one string that names a request in every log line, Celery task and Kafka message
it causes (docs/04-operations.md, "Metrics, logs and health probes").

It lives in a context variable: each gunicorn thread, Celery task and relay row sets its own, so
nothing passes it down by hand. A caller's `X-Request-Id` is kept when it is sane (1 to 128
characters of letters, digits and `._:-`, as UUIDs and trace ids are, and not holding a card
number: it is stored with events and sent as a Kafka header); otherwise PGI makes one.
"""

import contextvars
import re
import uuid

from pgi.cards import has_card_number

HEADER = "X-Request-Id"
META_KEY = "HTTP_X_REQUEST_ID"
# The Celery message header and the Kafka message header that carry it across processes.
CELERY_HEADER = "pgi_request_id"
KAFKA_HEADER = "pgi-request-id"
MAX_LENGTH = 128
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)

_current: contextvars.ContextVar[str] = contextvars.ContextVar("pgi_request_id", default="")


def current() -> str:
    """The request id of what this thread is doing now, or "" outside any request or task."""
    return _current.get()


def activate(value: str) -> contextvars.Token:
    """Make `value` the current request id; give the token back to `deactivate` when done."""
    return _current.set(value)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


def sane(value: str | None) -> str:
    """`value` when it may be logged and forwarded as is, else ""."""
    if value and _SANE.fullmatch(value) and not has_card_number(value):
        return value
    return ""


def new() -> str:
    return uuid.uuid4().hex


def from_header(value: str | None) -> str:
    """The caller's id when sane, else a new one: a request always has an id."""
    return sane(value) or new()
