"""The request id: kept from the caller when sane, answered in X-Request-Id, on every log line of the
request, in the Celery tasks it queues and in the Kafka headers of the events it causes."""

import re
import threading

import pytest
from django.test import Client

from payments.models import Payment
from pgi.events.models import OutboxEvent
from pgi.events.relay import Relay
from pgi.observability import request_id
from refunds.models import Refund, RefundStatus

from ..conftest import client_for
from ..events.test_relay import all_sent, consumed
from .test_metrics import BODY, wait_until

NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent, kept",
    [
        ("3f2c9a7e-5b1d-4c8e-9f00-1a2b3c4d5e6f", True),
        ("tps:batch-7.line_12", True),
        ("x" * 128, True),
        ("x" * 129, False),  # too long
        ("has space", False),
        ("new\nline", False),
        ("<script>", False),
        ("", False),
        ("4111111111111111", False),  # a card number: it would be stored with events and sent to Kafka
        ("5105-1051-0510-5100", False),
    ],
)
def test_a_sane_caller_id_is_kept_and_anything_else_replaced_by_a_new_one(client, sent, kept):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)

    if kept:
        assert response["X-Request-Id"] == sent
    else:
        assert NEW_ID.fullmatch(response["X-Request-Id"])


@pytest.mark.django_db
def test_every_answer_has_an_id_of_its_own_and_the_thread_keeps_none_after_it(client, api):
    first = api.get("/v1/payments")["X-Request-Id"]
    second = client.get("/v1/nowhere")["X-Request-Id"]

    assert NEW_ID.fullmatch(first) and NEW_ID.fullmatch(second) and first != second
    assert request_id.current() == ""


@pytest.mark.django_db
def test_the_log_lines_of_a_request_carry_its_id_as_json(api, json_log):
    response = api.get("/v1/payments/pay_nothere", HTTP_X_REQUEST_ID="req-log-1")
    untagged = Client().get("/healthz")  # noqa: F841 - a request that logs nothing

    assert response.status_code == 404
    lines = [line for line in json_log.records if line["logger"] == "django.request"]
    assert lines and {line["request_id"] for line in lines} == {"req-log-1"}
    assert {"time", "level", "logger", "message"} <= set(lines[0])


def test_a_line_outside_any_request_has_no_request_id(json_log):
    import logging

    logging.getLogger("pgi.test").warning("outside")

    (line,) = [line for line in json_log.records if line["logger"] == "pgi.test"]
    assert line["message"] == "outside" and "request_id" not in line


@pytest.mark.django_db(transaction=True)
def test_the_id_follows_a_payment_and_its_refund_into_the_worker_the_outbox_and_kafka(
    celery_worker, kafka_bootstrap, merchant_key, json_log, settings
):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "idle_seconds": 0.05, "lock_poll_seconds": 0.2}
    api = client_for(merchant_key)
    paid = api.post("/v1/payments", BODY, content_type="application/json", HTTP_X_REQUEST_ID="req-pay-1")
    payment_id = paid.json()["id"]
    refund = api.post(
        f"/v1/payments/{payment_id}/refunds", '{"amount": 20.00}', content_type="application/json", HTTP_X_REQUEST_ID="req-refund-1"
    )
    assert (paid["X-Request-Id"], refund["X-Request-Id"]) == ("req-pay-1", "req-refund-1")
    refund_id = refund.json()["id"]
    wait_until(lambda: Refund.objects.get(pk=refund_id).status == RefundStatus.COMPLETED, timeout=30, what="refund sent")

    # The worker's lines of the refund task carry the refund request's id.
    task_lines = [
        line for line in json_log.records if line["logger"] == "celery.app.trace" and refund_id in line["data"]["args"]
    ]
    assert task_lines and {line.get("request_id") for line in task_lines} == {"req-refund-1"}
    # REFUND_COMPLETED was written by the worker, from the id that came with the task.
    rows = OutboxEvent.objects.filter(key=payment_id, topic="payment-events").order_by("id")
    by_type = {row.event_type: row.request_id for row in rows}
    assert by_type["PAYMENT_PROCESSED"] == "req-pay-1"
    assert by_type["REFUND_CREATED"] == by_type["REFUND_COMPLETED"] == "req-refund-1"

    relay = Relay()
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(all_sent, timeout=30, what="the outbox published")
    finally:
        relay.stop()
        thread.join(30)
    messages = [m for m in consumed(kafka_bootstrap, "payment-events", expected=1, settle=1.0) if m.key == payment_id]
    headers = {m.headers["eventType"]: m.headers.get("pgi-request-id") for m in messages}
    assert headers["PAYMENT_CREATED"] == headers["PAYMENT_PROCESSED"] == "req-pay-1"
    assert headers["REFUND_CREATED"] == headers["REFUND_COMPLETED"] == "req-refund-1"
    assert Payment.objects.get(pk=payment_id).status == "PartiallyRefunded"

