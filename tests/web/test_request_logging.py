"""How django.request's records read: a client's 4xx at INFO, a server's 5xx at ERROR."""

import logging

import pytest

from ..conftest import client_for

pytestmark = pytest.mark.django_db


def request_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "django.request"]


def test_a_client_error_is_logged_at_info_not_warning(caplog, merchant_key):
    caplog.set_level(logging.INFO)

    response = client_for(merchant_key).get("/v1/payments/pay_unknown")

    assert response.status_code == 404
    assert [(r.levelname, r.status_code) for r in request_records(caplog)] == [("INFO", 404)]


def test_a_client_error_is_not_logged_when_the_level_is_warning(caplog, merchant_key):
    caplog.set_level(logging.WARNING)

    response = client_for(merchant_key).get("/v1/payments/pay_unknown")

    assert response.status_code == 404
    assert request_records(caplog) == []


def test_a_server_error_keeps_its_error_level(caplog):
    caplog.set_level(logging.INFO)

    logging.getLogger("django.request").error("Internal Server Error: /v1/payments", extra={"status_code": 500})

    assert [(r.levelname, r.status_code) for r in request_records(caplog)] == [("ERROR", 500)]
