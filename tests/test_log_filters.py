"""Card numbers never reach a log: settings.LOGGING's handler masks them in messages, arguments and
tracebacks, and so do the handlers Celery's worker and gunicorn set up themselves."""

import base64
import io
import logging
import runpy
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pgi.log_filters import RedactCardNumbers, handlers_redact

CARD = "4111111111111111"


def app_logger() -> logging.Logger:
    """A logger whose records reach the root handlers whatever level an earlier test left on root."""
    logger = logging.getLogger("pgi.tests.redact")
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.fixture
def root_output():
    """What the root logger's console handler (settings.LOGGING) writes, while the test runs."""
    (handler,) = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactCardNumbers) for f in h.filters)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_a_card_number_in_a_message_or_its_arguments_is_masked(root_output):
    logger = app_logger()
    logger.warning("paid with %s by %s", "4111 1111 1111 1111", "shop-1")
    logger.warning(f"raw body {{'pan': '{CARD}'}}")
    written = root_output.getvalue()
    assert CARD not in written and "4111 1111 1111 1111" not in written
    assert "paid with [card ****1111] by shop-1" in written
    assert "raw body {'pan': '[card ****1111]'}" in written


def test_a_card_number_in_a_traceback_is_masked(root_output):
    try:
        raise ValueError(f"unexpected {CARD}")
    except ValueError:
        app_logger().exception("failed")
    written = root_output.getvalue()
    assert "ValueError: unexpected [card ****1111]" in written and CARD not in written


def test_a_line_without_one_is_written_as_it_was(root_output):
    app_logger().warning("payment %s of %s: %d%%", "pay_1", "DE89370400440532013000", 5)
    assert "payment pay_1 of DE89370400440532013000: 5%" in root_output.getvalue()


def test_celery_workers_log_through_settings_logging_whose_handler_masks_card_numbers():
    from celery import signals
    from django.conf import settings

    import pgi.celery  # noqa: F401  (connects its receiver)

    # With a setup_logging receiver Celery's worker and beat leave logging to it (pgi/celery.py:
    # settings.LOGGING), so they write through the console handler, which masks card numbers.
    assert signals.setup_logging.has_listeners()
    assert "redact_card_numbers" in settings.LOGGING["handlers"]["console"]["filters"]
    filter_spec = settings.LOGGING["filters"]["redact_card_numbers"]["()"]
    assert filter_spec == "pgi.log_filters.RedactCardNumbers"


def test_handlers_set_up_outside_settings_get_the_filter_once():
    logger = logging.getLogger("test.redact.celery")
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False

    handlers_redact(logger)
    handlers_redact(logger)
    assert sum(isinstance(f, RedactCardNumbers) for f in logger.handlers[0].filters) == 1
    logger.error("GET /v1/payments?reference=%s 400", CARD)
    assert "[card ****1111]" in stream.getvalue() and CARD not in stream.getvalue()


def test_gunicorns_post_fork_hook_masks_its_access_and_error_logs():
    config = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    access = logging.getLogger("gunicorn.access")
    handler = logging.StreamHandler(io.StringIO())
    access.addHandler(handler)
    try:
        config["post_fork"](None, None)
        assert any(isinstance(f, RedactCardNumbers) for f in handler.filters)
    finally:
        access.removeHandler(handler)


def test_gunicorns_access_line_names_no_basic_auth_user():
    """A client sending its API key as a Basic user name (`requests.get(url, auth=(key, ""))`) would
    have it whole in every access line."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    gunicorn_config = Config()
    gunicorn_config.set("access_log_format", config["access_log_format"])
    key = "pgi_0123456789ab_secretsecretsecret"
    request = SimpleNamespace(
        method="GET", path="/v1/payments", query="", uri="/v1/payments", version=(1, 1), scheme="http",
        headers=[("AUTHORIZATION", "Basic " + base64.b64encode(f"{key}:".encode()).decode())],
    )
    response = SimpleNamespace(status="401 Unauthorized", sent=10, headers=[("X-Request-Id", "r1")])
    environ = {
        "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": request.headers[0][1], "REQUEST_METHOD": "GET",
        "RAW_URI": "/v1/payments", "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": "", "PATH_INFO": "/v1/payments",
    }
    atoms = Logger(gunicorn_config).atoms(response, request, environ, timedelta(seconds=0.01))
    line = config["access_log_format"] % atoms
    assert key not in line and "request_id=r1" in line


@pytest.mark.parametrize(
    "line",
    [
        "GET /v1/payments?reference=4111+1111+1111+1111 HTTP/1.1",
        "GET /v1/payments?reference=4111%201111%201111%201111 HTTP/1.1",
        "GET /v1/payments/4111%2D1111%2D1111%2D1111 HTTP/1.1",
        "GET /v1/payments?reference=%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31 HTTP/1.1",
    ],
)
def test_a_url_encoded_card_number_is_masked_too(line):
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%s", (line,), None)
    RedactCardNumbers().filter(record)
    written = record.getMessage()
    assert "[card ****1111]" in written
    assert "1111+1111" not in written and "1111%20" not in written and "%31%31" not in written and "%2D1111" not in written


def test_a_url_encoded_line_without_a_card_number_is_left_as_it_was():
    line = "GET /v1/payments?reference=order+2024-05-17&q=a%20b HTTP/1.1"
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%s", (line,), None)
    RedactCardNumbers().filter(record)
    assert record.getMessage() == line
