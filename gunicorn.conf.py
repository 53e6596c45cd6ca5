"""gunicorn settings of the web process: `gunicorn -c gunicorn.conf.py pgi.wsgi`.

Command-line options override these (scripts/run.py binds to 127.0.0.1 with fewer workers).
The request limits and the error answers are explained in docs/04-operations.md.
"""

import json
import os
import re
import time
from functools import lru_cache
from pathlib import Path

import gunicorn.glogging
import gunicorn.util

VAR_DIR = Path(os.environ.get("PGI_VAR_DIR") or Path(__file__).resolve().parent / "var")
bind = os.environ.get("PGI_WEB_BIND", "0.0.0.0:8000")
# A gateway answers in 200 ms to seconds, and a request waits for it: threads keep many calls in
# flight per process (workers x threads at once; bench/api_load.py measures the shape, with a
# 300 ms gateway, in bench/README.md). Threads share one pool of PostgreSQL connections per worker
# (Django's psycopg pool), and a thread waiting for a gateway holds none, so 4 x 32 threads need
# at most 4 x PGI_DB_POOL_SIZE connections. docs/scaling.md: how far one machine goes.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("PGI_WEB_THREADS", "32"))
raw_env = [f"PGI_DB_POOL_SIZE={os.environ.get('PGI_DB_POOL_SIZE', '8')}"]
timeout = int(os.environ.get("PGI_WEB_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("PGI_WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-"
# gunicorn's access line, with the request id PGI answered in X-Request-Id (the same id as on the
# application's own log lines of the request; docs/04-operations.md). No `%(u)s`: it is the user of a
# Basic Authorization header, and a client sending its API key that way would have it logged whole.
access_log_format = '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'


@lru_cache(maxsize=4)
def access_header_atoms(log_format):
    """The header atoms (`{name}i`, `{name}o`, lowercased) a format names, or None when it names an
    atom beyond AccessLogger's own."""
    names = re.findall(r"%\((.*?)\)", log_format)
    simple = {"h", "l", "t", "r", "s", "m", "U", "q", "H", "b", "f", "a"}
    if all(name in simple or re.fullmatch(r"\{[^{}]+\}[io]", name) for name in names):
        return frozenset(name.lower() for name in names if name.startswith("{"))
    return None


class AccessLogger(gunicorn.glogging.Logger):
    """gunicorn's logger, building only the atoms the access line names.

    gunicorn's own builds every atom for every request: a dict of each request header, response
    header and WSGI variable (some 60 entries), and the time formatted anew; the line above names
    nine. A format naming other atoms (an operator's --access-logformat) gets gunicorn's atoms.
    """

    _now = (None, "")

    def now(self):
        second = int(time.time())
        cached = self._now
        if cached[0] != second:  # threads may both format it: they write the same
            cached = (second, time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second)))
            self._now = cached
        return cached[1]

    def atoms(self, resp, req, environ, request_time):
        wanted = access_header_atoms(self.cfg.access_log_format)
        if wanted is None:
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "t": self.now(),
            "r": "%s %s %s" % (environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"]),
            "s": status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": sent is not None and str(sent) or "-",
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
        }
        if wanted:
            request_headers = getattr(req, "headers", req)
            for kind, headers in (("i", request_headers), ("o", resp.headers)):
                for header, value in headers.items() if hasattr(headers, "items") else headers:
                    atom = "{%s}%s" % (header.lower(), kind)
                    if atom in wanted:
                        atoms[atom] = value
        return atoms


logger_class = AccessLogger
# gunicorn's control socket (for `gunicornc`) defaults to one path per user, so a second gunicorn of
# the same user would take it over and stopping either would delete it. Each instance keeps its own
# in its var directory, owner-only, like the rest of its state.
control_socket = str(VAR_DIR / "gunicorn.ctl")
control_socket_mode = 0o600

# /metrics sums the request metrics of every worker of this server: prometheus_client keeps each
# worker's in files of this directory (its multiprocess mode, chosen by this variable, which the
# workers inherit). Emptied when the server starts; a dead worker's files are marked (child_exit).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))


def on_starting(server):
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):  # the last run's workers: their counts are not this server's
        stale.unlink(missing_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Request head limits. The request line may be as long as gunicorn allows (8190 bytes, its maximum)
# so that PGI itself answers a URL longer than its own bound (4096 characters, URI_TOO_LONG) in
# the error format. Anything beyond these limits is refused by gunicorn, before Django.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# gunicorn's own refusals (a request line over 8190 bytes, a NUL or another invalid character in
# a header, a malformed request line) never reach Django and gunicorn has no setting for their body,
# so its writer is replaced: the same status, in PGI's error format, still closing the connection.
GUNICORN_ERRORS = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    403: ("FORBIDDEN", "The request is forbidden."),
    414: ("URI_TOO_LONG", "The request line is longer than the server accepts."),
    417: ("EXPECTATION_FAILED", "The Expect header cannot be met."),
    431: ("REQUEST_HEADERS_TOO_LARGE", "The request headers are larger than the server accepts."),
    501: ("NOT_IMPLEMENTED", "The transfer coding is not supported."),
}


def write_json_error(sock, status_int, reason, mesg):
    code, message = GUNICORN_ERRORS.get(status_int, ("INTERNAL_ERROR", "The server could not answer."))
    body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_json_error


def pre_request(worker, req):
    """Close the connection after answering a body that PGI will not read to its end.

    A body over DATA_UPLOAD_MAX_MEMORY_SIZE is answered 413 and a chunked one 411 without reading
    it; what is left of it cannot be told from the next request. The app cannot say so itself:
    gunicorn drops a Connection header set by the app, but announces `Connection: close` when
    the request is marked to close.
    """
    from django.conf import settings  # the worker has loaded pgi.wsgi by now

    worker.log.debug("%s %s", req.method, req.path)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for name, value in req.headers:
        if name == "TRANSFER-ENCODING":
            req.must_close = True
        elif name == "CONTENT-LENGTH" and limit is not None and int(value) > limit:
            req.must_close = True


# Python's cyclic garbage collector in a worker. By default it runs a young-generation collection
# every 700 net allocations of container objects (a POST makes several thousand) and, now and then,
# a full one that walks every object the worker holds: Django, DRF, the models and views, all loaded
# once and never garbage. Once the application is loaded, those objects are moved out of the
# collector's sight (`gc.freeze`: they stay alive, and still free by reference counting), and young
# collections run every GC_YOUNG_THRESHOLD allocations; cycles are still collected. Measured with
# the production shape at 32 connections, five interleaved pairs of POST runs: +6.9 % payments a
# second, -7 % of the web process's CPU per payment (bench/README.md, "Seventh round").
GC_YOUNG_THRESHOLD = 10_000


def post_worker_init(worker):
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def post_fork(server, worker):
    """gunicorn's own logs (the access line carries the query string) mask card numbers as PGI's do."""
    import logging

    from pgi.log_filters import handlers_redact

    handlers_redact(logging.getLogger("gunicorn.access"), logging.getLogger("gunicorn.error"))
