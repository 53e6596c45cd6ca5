"""Request latency and status by route, for /metrics (docs/04-operations.md).

The label is the route's name (`payment-detail`, `admin:index`), or its pattern when it has none,
never the path: a path holds ids, and one time series per payment would swamp Prometheus. A path
that matched no route is `unmatched`; the probes answered before routing name themselves.

Under gunicorn these counters live in prometheus_client's multiprocess files
(PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py), so /metrics sums every worker of the pod.
"""

from prometheus_client import Counter, Histogram

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "pgi_http_requests",
    "HTTP requests answered, by route, method and status code.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "pgi_http_request_duration_seconds",
    "Time from the request reaching PGI's first middleware to its answer, by route and method.",
    ["route", "method"],
    # A gateway answers in 200 ms to seconds; gunicorn's timeout is 60 s.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


def route_of(request) -> str:
    name = getattr(request, "pgi_route", None)
    if name:
        return name
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return match.view_name or match.route or UNMATCHED


def observe(request, status: int, seconds: float) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
