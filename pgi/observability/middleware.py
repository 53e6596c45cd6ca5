"""The outermost middleware: the request id, and each request's latency and status for /metrics."""

import time

from django.core.signals import request_finished
from django.dispatch import receiver

from . import request_id
from .http_metrics import observe


class RequestObservabilityMiddleware:
    """Sets the request id for everything the request does (logs, Celery tasks, outbox rows),
    answers it in `X-Request-Id`, and records the request in pgi_http_* by route.

    First in MIDDLEWARE: its clock covers every other middleware, and the id is set before any of
    them can log."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id.from_header(request.META.get(request_id.META_KEY))
        # Left current after the middleware returns: Django logs a 4xx or 5xx answer (django.request)
        # after the last middleware, and that line belongs to the request too. request_finished ends it.
        request_id.activate(rid)
        started = time.perf_counter()
        response = self.get_response(request)
        response[request_id.HEADER] = rid
        observe(request, response.status_code, time.perf_counter() - started)
        return response


@receiver(request_finished, dispatch_uid="pgi.request_id.finished")
def request_id_end(**kwargs) -> None:
    """The response is sent: the thread serves its next request (gunicorn's threads are reused) with none."""
    request_id.activate("")
