"""The outermost middleware: the request id, and each request's latency and status for /metrics."""

import time

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
        token = request_id.activate(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[request_id.HEADER] = rid
            observe(request, response.status_code, time.perf_counter() - started)
            return response
        finally:
            request_id.deactivate(token)  # a gunicorn thread serves the next request with none
