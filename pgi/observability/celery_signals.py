"""Celery's side of observability: the request id travels with each task, and failures are counted.

A task published while a request id is current carries it in the message header `pgi_request_id`
(before_task_publish); the worker makes it current while the task runs (task_prerun, task_postrun),
so the task's log lines and the outbox rows it writes carry the request's id. A failed task adds one
to the shared counter `celery_task_failures` (task_failure), which /metrics reads.
"""

from celery import signals

from . import request_id
from .shared_counters import counter_add

TASK_FAILURES = "celery_task_failures"
_TOKEN = "_pgi_request_id_token"


def _publishing(headers=None, **kwargs) -> None:
    rid = request_id.current()
    if rid and headers is not None and not headers.get(request_id.CELERY_HEADER):
        headers[request_id.CELERY_HEADER] = rid


def _starting(task=None, **kwargs) -> None:
    # An eager task (apply) runs in the caller's thread and context: no header, and the id is current already.
    rid = request_id.sane(getattr(task.request, request_id.CELERY_HEADER, None)) if task is not None else ""
    if rid:
        setattr(task.request, _TOKEN, request_id.activate(rid))


def _finished(task=None, **kwargs) -> None:
    token = getattr(task.request, _TOKEN, None) if task is not None else None
    if token is not None:
        request_id.deactivate(token)
        setattr(task.request, _TOKEN, None)


def _failed(sender=None, **kwargs) -> None:
    counter_add(TASK_FAILURES, (getattr(sender, "name", None) or "unknown",))


def connect() -> None:
    signals.before_task_publish.connect(_publishing, weak=False, dispatch_uid="pgi.request_id.publish")
    signals.task_prerun.connect(_starting, weak=False, dispatch_uid="pgi.request_id.prerun")
    signals.task_postrun.connect(_finished, weak=False, dispatch_uid="pgi.request_id.postrun")
    signals.task_failure.connect(_failed, weak=False, dispatch_uid="pgi.metrics.task_failure")
