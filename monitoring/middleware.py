"""The orchestrator's probes and Prometheus' scrape, answered before the rest of the middleware.

Kubernetes probes a pod, and Prometheus scrapes it, at the pod's address: a Host header that
DJANGO_ALLOWED_HOSTS does not list (Django would answer 400), over plain HTTP (PGI_HTTPS would
redirect). These paths answer without reading the host, a session or a cookie, so they run before
SecurityMiddleware and CommonMiddleware; /metrics checks its own token. Only the exact paths.
"""

from pgi.web import views as web_views

from . import views


class ProbesMiddleware:
    ROUTES = {
        "/healthz": ("healthz", web_views.healthz),
        "/readyz": ("readyz", web_views.readyz),
        "/metrics": ("metrics", views.metrics),
    }

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        route = self.ROUTES.get(request.path_info)
        if route is None:
            return self.get_response(request)
        request.pgi_route, view = route  # the route label of pgi_http_* (pgi/observability/http_metrics.py)
        return view(request)
