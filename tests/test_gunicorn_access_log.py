"""gunicorn.conf.py's AccessLogger writes the same access line as gunicorn's own logger, building only
the atoms the format names; a format naming others gets gunicorn's atoms whole."""

import os
import runpy
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger



def load_conf() -> dict:
    """gunicorn.conf.py's names, leaving the environment as it was: the file sets
    PROMETHEUS_MULTIPROC_DIR for gunicorn's workers, which would put this test process's metrics in
    multiprocess mode."""
    saved = dict(os.environ)
    try:
        return runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


CONF = load_conf()
AccessLogger = CONF["AccessLogger"]


def exchange(query=""):
    request = SimpleNamespace(
        method="POST", path="/v1/payments", query=query, uri="/v1/payments", version=(1, 1), scheme="http",
        headers=[("USER-AGENT", 'curl/8 "quoted"'), ("IDEMPOTENCY-KEY", "k-1"), ("CONTENT-TYPE", "application/json")],
    )
    response = SimpleNamespace(
        status="201 Created", sent=571,
        headers=[("Content-Type", "application/json"), ("X-Request-Id", "0f3c"), ("Location", "/v1/payments/pay_1")],
    )
    environ = {
        "REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": "/v1/payments" + (f"?{query}" if query else ""),
        "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": query, "PATH_INFO": "/v1/payments",
        "HTTP_USER_AGENT": 'curl/8 "quoted"', "HTTP_REFERER": "https://shop.example/checkout",
    }
    return response, request, environ


def lines(log_format, query=""):
    config = Config()
    config.set("access_log_format", log_format)
    ours, theirs = AccessLogger(config), Logger(config)
    theirs.now = ours.now  # the same second on both lines
    response, request, environ = exchange(query)
    took = timedelta(seconds=0.0123)
    written = [
        log_format % logger.atoms_wrapper_class(logger.atoms(response, request, environ, took))
        for logger in (ours, theirs)
    ]
    return written


def test_gunicorn_conf_uses_the_access_logger():
    assert CONF["logger_class"] is AccessLogger


@pytest.mark.parametrize(
    "log_format",
    [
        CONF["access_log_format"],
        '%(m)s %(U)s?%(q)s %(H)s %({idempotency-key}i)s %({location}o)s %({absent}o)s %({Content-Type}o)s',
        # atoms AccessLogger does not build: gunicorn's atoms are used whole
        "%(h)s %(D)s %(L)s %(p)s %({wsgi.url_scheme}e)s",
    ],
)
def test_the_line_is_gunicorns_line(log_format):
    ours, theirs = lines(log_format, query="reference=abc")
    assert ours == theirs


def test_the_production_line_carries_the_request_id_and_the_request():
    (line, _) = lines(CONF["access_log_format"])
    assert '"POST /v1/payments HTTP/1.1" 201 571' in line
    assert line.endswith("request_id=0f3c")
    assert '"curl/8 \\"quoted\\""' in line  # quotes escaped as gunicorn does


def test_the_time_is_gunicorns_format_formatted_once_a_second(monkeypatch):
    logger = AccessLogger(Config())
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)
    first = logger.now()
    assert first == time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(1_800_000_000))
    assert logger.now() is first
    monkeypatch.setattr(time, "time", lambda: 1_800_000_001.0)
    assert logger.now() == time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(1_800_000_001)) != first
