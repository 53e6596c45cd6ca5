"""GET /metrics, in Prometheus' text format, for holders of PGI_METRICS_TOKEN only."""

import hmac
import os

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .collectors import DomainCollector

domain_registry = CollectorRegistry(auto_describe=False)
domain_collector = DomainCollector()
domain_registry.register(domain_collector)


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, "details": []}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def bearer_matches(request, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; False when `token` is empty."""
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def process_registry():
    """This pod's in-process metrics (pgi_http_*): every gunicorn worker's, summed from the
    multiprocess directory when gunicorn set one, else this process's own."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def metrics(request):
    """404 while PGI_METRICS_TOKEN is unset (no one may read it), 401 without the token, else the
    text: this pod's request metrics, then the installation's figures (monitoring/collectors.py)."""
    token = settings.PGI_METRICS_TOKEN
    if not token:
        return _error(404, "NOT_FOUND", "No resource exists at this URL.")
    if request.method not in ("GET", "HEAD"):
        return _error(405, "METHOD_NOT_ALLOWED", "This method is not allowed on this URL.")
    if not bearer_matches(request, token):
        return _error(401, "UNAUTHENTICATED", "Authentication credentials were not provided or are invalid.")
    body = generate_latest(process_registry()) + generate_latest(domain_registry)
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
