"""The simulator connector, called directly: test values, idempotency, capture, void, refunds, one
ledger per gateway code, latency, the outage switch shared through Redis, signed webhooks, the
settlement report and the `simulator` management command. Against PostgreSQL and Redis."""

import datetime
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from unittest import mock

import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from gateways.base import (
    CaptureRequest,
    ErrorCode,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidWebhook,
    Operation,
    PaymentRequest,
    RefundRequest,
    RefundStatus,
    ReportLine,
    VoidRequest,
)
from gateways.models import SimulatorCharge, SimulatorRefund
from gateways.simulator.connector import SimulatorConnector, simulator_outage, simulator_outage_set
from gateways.simulator.report import ReportFormatError, parse_report_csv
from gateways.simulator.webhooks import SIGNATURE_HEADER, sign
from gateways.simulator.tasks import simulator_webhook_send

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_simulator"
UTC = datetime.UTC


def simulator(code: str = "simulator", **options) -> SimulatorConnector:
    return SimulatorConnector(code, webhook_secret=SECRET, **options)


def payment(
    payment_id: str = "pay_1",
    account: str = "account123",
    amount: str = "50.00",
    currency: str = "USD",
    capture: bool = True,
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=payment_id,
        amount=Decimal(amount),
        currency=currency,
        from_account=account,
        merchant_code="merchant456",
        capture=capture,
    )


def capture_of(result, payment_id: str = "pay_1", amount: str = "50.00", currency: str = "USD") -> CaptureRequest:
    return CaptureRequest(
        payment_id=payment_id,
        gateway_reference=result.reference,
        amount=Decimal(amount),
        currency=currency,
        merchant_code="merchant456",
    )


def void_of(result, payment_id: str = "pay_1") -> VoidRequest:
    return VoidRequest(
        payment_id=payment_id,
        gateway_reference=result.reference,
        amount=Decimal("50.00"),
        currency="USD",
        merchant_code="merchant456",
    )


def refund_of(result, refund_id: str, amount: str, payment_id: str = "pay_1", currency: str = "USD") -> RefundRequest:
    return RefundRequest(
        refund_id=refund_id,
        payment_id=payment_id,
        gateway_reference=result.reference,
        amount=Decimal(amount),
        currency=currency,
        merchant_code="merchant456",
        reason="returned goods",
    )


def charge_of(payment_id: str = "pay_1", code: str = "simulator") -> SimulatorCharge:
    return SimulatorCharge.objects.get(gateway=code, idempotency_key=payment_id)


def signed(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp, body=body)}


@pytest.fixture
def two_simulators_configured(settings):
    """`simulator` and `simulator_b` in PGI_GATEWAYS (the registry rebuilds its connectors)."""
    options = {"class": "gateways.simulator.connector.SimulatorConnector", "webhook_secret": SECRET, "webhook_delay": 0.5}
    settings.PGI_GATEWAYS = {"simulator": dict(options), "simulator_b": dict(options)}
    return settings


# --- test values ------------------------------------------------------------------------------


def test_an_ordinary_account_is_charged_and_captured_at_once():
    result = simulator().authorize(payment(amount="50.00"))

    charge = charge_of()
    assert (result.status, result.reference, result.amount, result.currency) == (
        GatewayStatus.SUCCEEDED, charge.reference, Decimal("50.00"), "USD"
    )
    assert (result.error_code, result.error_message) == ("", "")
    assert (charge.status, charge.captured_amount, charge.capture) == ("succeeded", Decimal("50.00"), True)
    assert charge.captured_at is not None
    assert charge.reference.startswith("sim_")


@pytest.mark.parametrize(
    ("account", "code", "message"),
    [
        ("account0002", ErrorCode.DECLINED, "The issuer declined the payment."),
        ("DE75370400440532010051", ErrorCode.INSUFFICIENT_FUNDS, "The account has insufficient funds."),
        ("card-0054", ErrorCode.CARD_EXPIRED, "The card has expired."),
        ("card-0059", ErrorCode.FRAUD_SUSPECTED, "The issuer suspects fraud."),
        ("card-0065", ErrorCode.LIMIT_EXCEEDED, "The account's limit is exceeded."),
    ],
)
def test_declining_test_values_decline_with_their_code(account, code, message):
    result = simulator().authorize(payment(account=account))

    assert (result.status, result.error_code, result.error_message) == (GatewayStatus.DECLINED, code, message)
    charge = charge_of()
    assert (charge.status, charge.decline_code, charge.captured_amount) == ("declined", code, None)
    assert result.reference == charge.reference


def test_0408_charges_then_times_out_and_the_status_query_finds_the_charge():
    connector = simulator()

    with pytest.raises(GatewayTimeout):
        connector.authorize(payment(account="account0408"))

    charge = charge_of()
    assert (charge.status, charge.captured_amount) == ("succeeded", Decimal("50.00"))
    found = connector.status(payment_id="pay_1")
    assert (found.status, found.reference, found.amount) == (GatewayStatus.SUCCEEDED, charge.reference, Decimal("50.00"))
    with pytest.raises(GatewayTimeout):
        connector.authorize(payment(account="account0408"))  # the answer never arrives; nothing charged twice
    assert SimulatorCharge.objects.count() == 1


@pytest.mark.parametrize("account", ["account0503", "account0504"])
def test_0503_and_0504_are_unavailable_and_record_nothing(account):
    connector = simulator()

    with pytest.raises(GatewayUnavailable):
        connector.authorize(payment(account=account))

    assert not SimulatorCharge.objects.exists()
    assert connector.status(payment_id="pay_1") is None


def test_0202_is_pending_and_queues_its_webhook_after_the_commit(django_capture_on_commit_callbacks):
    connector = simulator("simulator_b", webhook_delay=0.5)

    with mock.patch.object(simulator_webhook_send, "apply_async", autospec=True) as queued:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            result = connector.authorize(payment(account="account0202"))
        assert not queued.called  # nothing reaches the broker before the ledger row is committed
        for callback in callbacks:
            callback()

    charge = charge_of(code="simulator_b")
    assert (result.status, result.reference, charge.status) == (GatewayStatus.PENDING, charge.reference, "pending")
    queued.assert_called_once_with(args=[charge.reference, "simulator_b"], countdown=0.5)


def test_a_repeated_0202_queues_no_second_webhook(django_capture_on_commit_callbacks):
    connector = simulator()
    with django_capture_on_commit_callbacks(execute=False) as first:
        connector.authorize(payment(account="account0202"))
    with django_capture_on_commit_callbacks(execute=False) as second:
        again = connector.authorize(payment(account="account0202"))

    assert (len(first), len(second)) == (1, 0)
    assert again.status is GatewayStatus.PENDING


def test_capture_false_records_an_authorization():
    result = simulator().authorize(payment(capture=False))

    charge = charge_of()
    assert (result.status, result.amount) == (GatewayStatus.AUTHORIZED, Decimal("50.00"))
    assert (charge.status, charge.capture, charge.captured_amount, charge.captured_at) == ("authorized", False, None, None)


@pytest.mark.parametrize(
    ("amount", "currency"), [("0", "USD"), ("-1.00", "USD"), ("10.001", "USD"), ("5.5", "JPY"), ("10.00", "XXX")]
)
def test_an_amount_the_currency_cannot_carry_is_refused_and_not_recorded(amount, currency):
    result = simulator().authorize(payment(amount=amount, currency=currency))

    assert (result.status, result.error_code) == (GatewayStatus.DECLINED, ErrorCode.INVALID_REQUEST)
    assert not SimulatorCharge.objects.exists()


# --- idempotency and one ledger per gateway ---------------------------------------------------


@pytest.mark.parametrize("account", ["account123", "account0002"])
def test_authorizing_twice_records_one_charge_and_answers_the_same(account):
    connector = simulator()

    first = connector.authorize(payment(account=account))
    second = simulator().authorize(payment(account=account, amount="99.00"))

    assert first == second
    assert SimulatorCharge.objects.count() == 1


def test_two_simulators_keep_separate_ledgers():
    a, b = simulator("simulator"), simulator("simulator_b")

    on_a = a.authorize(payment(account="account0002"))
    on_b = b.authorize(payment(account="account123"))  # the same payment, failed over to b

    assert (on_a.status, on_b.status) == (GatewayStatus.DECLINED, GatewayStatus.SUCCEEDED)
    assert on_a.reference != on_b.reference
    assert a.status(payment_id="pay_1").reference == on_a.reference
    assert b.status(payment_id="pay_1").reference == on_b.reference
    assert b.status(payment_id="pay_2") is None
    a.authorize(payment(payment_id="pay_2"))
    assert b.status(payment_id="pay_2") is None
    assert sorted(SimulatorCharge.objects.values_list("gateway", "idempotency_key")) == [
        ("simulator", "pay_1"), ("simulator", "pay_2"), ("simulator_b", "pay_1")
    ]


def test_status_by_gateway_reference_and_of_an_unknown_payment():
    connector = simulator()
    result = connector.authorize(payment(capture=False))

    assert connector.status(payment_id="pay_unknown", gateway_reference=result.reference).status is GatewayStatus.AUTHORIZED
    assert connector.status(payment_id="pay_unknown") is None
    assert simulator("simulator_b").status(payment_id="pay_1", gateway_reference=result.reference) is None


# --- capture and void -------------------------------------------------------------------------


def test_full_capture():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))

    captured = connector.capture(capture_of(authorized, amount="50.00"))

    assert (captured.status, captured.reference, captured.amount) == (GatewayStatus.SUCCEEDED, authorized.reference, Decimal("50.00"))
    charge = charge_of()
    assert (charge.status, charge.captured_amount) == ("succeeded", Decimal("50.00"))
    assert charge.captured_at is not None
    assert connector.status(payment_id="pay_1").amount == Decimal("50.00")


def test_partial_capture_captures_only_that_amount():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))

    captured = connector.capture(capture_of(authorized, amount="30.00"))

    assert (captured.status, captured.amount) == (GatewayStatus.SUCCEEDED, Decimal("30.00"))
    assert charge_of().captured_amount == Decimal("30.00")
    assert connector.status(payment_id="pay_1").amount == Decimal("30.00")


@pytest.mark.parametrize(("amount", "currency"), [("50.01", "USD"), ("0", "USD"), ("10.00", "EUR")])
def test_capture_of_more_than_authorized_or_of_another_currency_is_refused_without_raising(amount, currency):
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))

    refused = connector.capture(capture_of(authorized, amount=amount, currency=currency))

    assert (refused.status, refused.error_code) == (GatewayStatus.DECLINED, ErrorCode.INVALID_REQUEST)
    assert refused.error_message
    assert (charge_of().status, charge_of().captured_amount) == ("authorized", None)
    assert connector.capture(capture_of(authorized, amount="50.00")).status is GatewayStatus.SUCCEEDED


def test_capturing_twice_returns_the_first_capture():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))
    first = connector.capture(capture_of(authorized, amount="20.00"))

    second = connector.capture(capture_of(authorized, amount="50.00"))

    assert first == second
    assert second.amount == Decimal("20.00")
    assert charge_of().captured_amount == Decimal("20.00")


def test_capture_of_a_charge_captured_at_once_is_already_processed():
    connector = simulator()
    charged = connector.authorize(payment())

    refused = connector.capture(capture_of(charged))

    assert (refused.status, refused.error_code) == (GatewayStatus.DECLINED, ErrorCode.ALREADY_PROCESSED)


def test_capture_of_an_unknown_charge_is_an_invalid_request():
    connector = simulator()
    on_a = connector.authorize(payment(capture=False))

    refused = simulator("simulator_b").capture(capture_of(on_a))

    assert (refused.status, refused.error_code) == (GatewayStatus.DECLINED, ErrorCode.INVALID_REQUEST)
    assert charge_of().status == "authorized"


def test_void_cancels_an_authorization_and_answers_the_same_when_repeated():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))

    voided = connector.void(void_of(authorized))
    again = connector.void(void_of(authorized))

    assert (voided.status, voided.reference) == (GatewayStatus.CANCELLED, authorized.reference)
    assert again == voided
    assert charge_of().status == "cancelled"
    after = connector.capture(capture_of(authorized))
    assert (after.status, after.error_code) == (GatewayStatus.DECLINED, ErrorCode.ALREADY_PROCESSED)
    assert connector.status(payment_id="pay_1").status is GatewayStatus.CANCELLED


@pytest.mark.parametrize("capture_first", [False, True])
def test_void_of_a_captured_charge_is_already_processed(capture_first):
    connector = simulator()
    if capture_first:
        authorized = connector.authorize(payment(capture=False))
        connector.capture(capture_of(authorized))
    else:
        authorized = connector.authorize(payment())

    refused = connector.void(void_of(authorized))

    assert (refused.status, refused.error_code) == (GatewayStatus.DECLINED, ErrorCode.ALREADY_PROCESSED)
    assert charge_of().status == "succeeded"


# --- refunds ----------------------------------------------------------------------------------


def test_full_refund():
    connector = simulator()
    charged = connector.authorize(payment())

    refunded = connector.refund(refund_of(charged, "rfd_1", "50.00"))

    stored = SimulatorRefund.objects.get()
    assert (refunded.status, refunded.reference, refunded.amount, refunded.currency) == (
        RefundStatus.SUCCEEDED, stored.reference, Decimal("50.00"), "USD"
    )
    assert (stored.gateway, stored.refund_id, stored.charge, stored.status, stored.reason) == (
        "simulator", "rfd_1", charge_of(), "succeeded", "returned goods"
    )


def test_partial_refunds_up_to_the_captured_amount_and_not_beyond():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))
    connector.capture(capture_of(authorized, amount="40.00"))

    first = connector.refund(refund_of(authorized, "rfd_1", "25.00"))
    too_much = connector.refund(refund_of(authorized, "rfd_2", "15.01"))
    rest = connector.refund(refund_of(authorized, "rfd_3", "15.00"))
    nothing_left = connector.refund(refund_of(authorized, "rfd_4", "0.01"))

    assert [r.status for r in (first, too_much, rest, nothing_left)] == [
        RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.SUCCEEDED, RefundStatus.FAILED
    ]
    assert too_much.error_code == ErrorCode.INVALID_REQUEST
    assert "15.00" in too_much.error_message
    assert dict(SimulatorRefund.objects.values_list("refund_id", "status")) == {
        "rfd_1": "succeeded", "rfd_2": "failed", "rfd_3": "succeeded", "rfd_4": "failed"
    }


def test_refund_is_idempotent_on_the_refund_id():
    connector = simulator()
    charged = connector.authorize(payment())

    first = connector.refund(refund_of(charged, "rfd_1", "30.00"))
    second = simulator().refund(refund_of(charged, "rfd_1", "30.00"))
    failed = connector.refund(refund_of(charged, "rfd_2", "30.00"))
    failed_again = connector.refund(refund_of(charged, "rfd_2", "30.00"))

    assert first == second
    assert failed == failed_again
    assert failed.status is RefundStatus.FAILED
    assert SimulatorRefund.objects.count() == 2


@pytest.mark.parametrize("account", ["account0002", "account0202"])
def test_refund_of_a_charge_that_captured_nothing_fails(account):
    connector = simulator()
    result = connector.authorize(payment(account=account, capture=account != "account0202"))

    refused = connector.refund(refund_of(result, "rfd_1", "1.00"))

    assert (refused.status, refused.error_code) == (RefundStatus.FAILED, ErrorCode.INVALID_REQUEST)


def test_refund_of_an_authorization_fails_and_one_in_another_currency_too():
    connector = simulator()
    authorized = connector.authorize(payment(capture=False))
    assert connector.refund(refund_of(authorized, "rfd_1", "1.00")).status is RefundStatus.FAILED
    connector.capture(capture_of(authorized))

    refused = connector.refund(refund_of(authorized, "rfd_2", "1.00", currency="EUR"))

    assert (refused.status, refused.error_code) == (RefundStatus.FAILED, ErrorCode.INVALID_REQUEST)
    assert "USD" in refused.error_message


def test_refund_of_an_unknown_charge_fails_and_records_nothing():
    charged = simulator().authorize(payment())

    refused = simulator("simulator_b").refund(refund_of(charged, "rfd_1", "1.00"))

    assert (refused.status, refused.error_code) == (RefundStatus.FAILED, ErrorCode.INVALID_REQUEST)
    assert not SimulatorRefund.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_cannot_both_take_the_remainder():
    charged = simulator().authorize(payment())
    barrier = threading.Barrier(4)
    results = []

    def refund(number: int):
        try:
            barrier.wait()
            results.append(simulator().refund(refund_of(charged, f"rfd_{number}", "30.00")))
        finally:
            connection.close()

    threads = [threading.Thread(target=refund, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(result.status.value for result in results) == ["failed", "failed", "failed", "succeeded"]
    assert SimulatorRefund.objects.filter(status="succeeded").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_capture_once():
    authorized = simulator().authorize(payment(capture=False))
    barrier = threading.Barrier(4)
    results = []

    def capture(amount: str):
        try:
            barrier.wait()
            results.append(simulator().capture(capture_of(authorized, amount=amount)))
        finally:
            connection.close()

    threads = [threading.Thread(target=capture, args=(amount,)) for amount in ("10.00", "20.00", "30.00", "40.00")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Whoever locked the charge first captured; every other capture got that first answer.
    assert len(results) == 4
    assert len(set(results)) == 1
    assert charge_of().captured_amount == results[0].amount


# --- latency and outage -----------------------------------------------------------------------


def every_call(connector: SimulatorConnector) -> dict:
    authorized = SimulatorCharge(reference="sim_x")
    return {
        "authorize": lambda: connector.authorize(payment()),
        "capture": lambda: connector.capture(capture_of(authorized)),
        "void": lambda: connector.void(void_of(authorized)),
        "refund": lambda: connector.refund(refund_of(authorized, "rfd_1", "1.00")),
        "status": lambda: connector.status(payment_id="pay_1"),
        "report": lambda: connector.fetch_report(datetime.date(2026, 11, 28)),
    }


def test_latency_is_slept_before_every_answer(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    connector = simulator(latency=1.5)

    for call in every_call(connector).values():
        call()

    assert slept == [1.5] * 6


def test_no_latency_sleeps_nothing(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)

    simulator().authorize(payment())

    assert slept == []


def test_latency_is_slept_even_while_down(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)

    with pytest.raises(GatewayUnavailable):
        simulator(latency=0.25, outage=True).authorize(payment())

    assert slept == [0.25]


def test_the_outage_switch_is_shared_through_the_cache_and_can_be_turned_off():
    assert isinstance(caches["default"], RedisCache), "the switch must be shared between processes: needs REDIS_URL"
    connector = simulator()
    connector.authorize(payment(payment_id="pay_before", capture=False))

    simulator_outage_set("simulator", True)

    fresh = simulator()  # another instance, as in another process: it reads the same cache
    assert simulator_outage("simulator") is True
    for call in every_call(fresh).values():
        with pytest.raises(GatewayUnavailable, match="down"):
            call()
    assert list(SimulatorCharge.objects.values_list("idempotency_key", flat=True)) == ["pay_before"]
    assert simulator("simulator_b").authorize(payment()).status is GatewayStatus.SUCCEEDED  # only one is down

    simulator_outage_set("simulator", False)

    assert simulator_outage("simulator") is False
    assert simulator().authorize(payment()).status is GatewayStatus.SUCCEEDED


def test_the_outage_option_keeps_a_simulator_down_whatever_the_switch_says():
    assert simulator_outage("simulator") is False

    with pytest.raises(GatewayUnavailable):
        simulator(outage=True).status(payment_id="pay_1")


def test_an_unreadable_switch_reads_as_up(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("gateways.simulator.connector.cache.get", broken)

    assert simulator_outage("simulator") is False
    assert "unreadable" in caplog.text


def test_fee_options_must_be_decimal_strings():
    assert simulator(fee_percent="2.9", fee_fixed=Decimal("0.30")).fee(Decimal("100.00"), "USD") == Decimal("3.20")
    for bad in ({"fee_percent": 1.4}, {"fee_fixed": "abc"}, {"fee_fixed": "-0.25"}):
        with pytest.raises(ImproperlyConfigured):
            simulator(**bad)


# --- webhooks ---------------------------------------------------------------------------------


def event_of(connector: SimulatorConnector, body: bytes):
    [event] = connector.parse_webhook(headers=signed(body), body=body)
    return event


@pytest.mark.parametrize(
    ("steps", "event_type", "operation", "status", "amount"),
    [
        ([], "charge.succeeded", Operation.AUTHORIZE, GatewayStatus.SUCCEEDED, "50.00"),
        (["authorize_only"], "charge.authorized", Operation.AUTHORIZE, GatewayStatus.AUTHORIZED, "50.00"),
        (["authorize_only", "capture"], "charge.captured", Operation.CAPTURE, GatewayStatus.SUCCEEDED, "30.00"),
        (["authorize_only", "void"], "charge.cancelled", Operation.VOID, GatewayStatus.CANCELLED, "50.00"),
        (["decline"], "charge.declined", Operation.AUTHORIZE, GatewayStatus.DECLINED, "50.00"),
        (["async"], "charge.pending", Operation.AUTHORIZE, GatewayStatus.PENDING, "50.00"),
    ],
)
def test_a_signed_charge_webhook_is_one_event_of_the_charge_state(steps, event_type, operation, status, amount):
    connector = simulator()
    account = {"decline": "account0002", "async": "account0202"}.get(steps[0] if steps else "", "account123")
    result = connector.authorize(payment(account=account, capture="authorize_only" not in steps))
    if "capture" in steps:
        connector.capture(capture_of(result, amount="30.00"))
    if "void" in steps:
        connector.void(void_of(result))
    charge = charge_of()

    event = event_of(connector, connector.webhook_body(charge))

    assert (event.event_id, event.operation, event.payment_id, event.raw_type) == (
        f"evt_{charge.reference}.{event_type}", operation, "pay_1", event_type
    )
    assert (event.result.status, event.result.reference, event.result.amount, event.result.currency) == (
        status, charge.reference, Decimal(amount), "USD"
    )
    assert event.gateway_reference == charge.reference
    assert event.refund_result is None
    if status is GatewayStatus.DECLINED:
        assert (event.result.error_code, event.result.error_message) == ("DECLINED", "The issuer declined the payment.")


def test_a_signed_refund_webhook_names_the_refund_and_its_payment():
    connector = simulator()
    charged = connector.authorize(payment())
    connector.refund(refund_of(charged, "rfd_1", "20.00"))
    connector.refund(refund_of(charged, "rfd_2", "40.00"))
    ok, failed = SimulatorRefund.objects.get(refund_id="rfd_1"), SimulatorRefund.objects.get(refund_id="rfd_2")

    event = event_of(connector, connector.webhook_body(charge_of(), refund=ok))
    refused = event_of(connector, connector.webhook_body(charge_of(), refund=failed))

    assert (event.event_id, event.operation, event.payment_id, event.refund_id, event.gateway_reference) == (
        f"evt_{ok.reference}.refund.succeeded", Operation.REFUND, "pay_1", "rfd_1", charged.reference
    )
    assert event.result is None
    assert (event.refund_result.status, event.refund_result.reference, event.refund_result.amount) == (
        RefundStatus.SUCCEEDED, ok.reference, Decimal("20.00")
    )
    assert (refused.refund_result.status, refused.refund_result.error_code) == (RefundStatus.FAILED, "INVALID_REQUEST")
    assert "remains captured" in refused.refund_result.error_message


def test_the_webhook_body_format():
    connector = simulator()
    connector.authorize(payment(amount="12"))
    charge = charge_of()

    payload = json.loads(connector.webhook_body(charge))

    assert abs(payload.pop("created") - time.time()) < 60
    assert payload == {
        "id": f"evt_{charge.reference}.charge.succeeded",
        "type": "charge.succeeded",
        "data": {
            "reference": charge.reference,
            "merchantReference": "pay_1",
            "status": "succeeded",
            "amount": "12.00",
            "currency": "USD",
            "declineCode": "",
        },
    }


def test_the_same_event_keeps_its_id_and_a_later_state_gets_another():
    connector = simulator()
    connector.authorize(payment(capture=False))
    charge = charge_of()
    first, again = event_of(connector, connector.webhook_body(charge)), event_of(connector, connector.webhook_body(charge))
    connector.void(void_of(charge))

    later = event_of(connector, connector.webhook_body(charge_of()))

    assert first.event_id == again.event_id
    assert later.event_id != first.event_id


def body_of(**changes) -> bytes:
    payload = {
        "id": "evt_1",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "data": {"reference": "sim_1", "merchantReference": "pay_1", "status": "succeeded", "amount": "1.00",
                 "currency": "USD", "declineCode": ""},
    }
    for key, value in changes.items():
        if key in payload["data"]:
            payload["data"][key] = value
        else:
            payload[key] = value
    return json.dumps(payload).encode()


def test_a_valid_hand_made_webhook_as_the_docs_show_is_accepted():
    event = event_of(simulator(), body_of())

    assert (event.event_id, event.payment_id, event.result.status, event.result.amount) == (
        "evt_1", "pay_1", GatewayStatus.SUCCEEDED, Decimal("1.00")
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "garbage"},
        {SIGNATURE_HEADER: "t=1,v1=abc"},
        {SIGNATURE_HEADER: "v1=abc"},
        {SIGNATURE_HEADER: "t=notanumber,v1=abc"},
        {SIGNATURE_HEADER: f"t={int(time.time())},v1={'0' * 64}"},
        "another secret",
    ],
)
def test_a_badly_signed_webhook_is_refused(headers):
    body = body_of()
    if headers == "another secret":
        headers = signed(body, secret="whsec_attacker")

    with pytest.raises(InvalidWebhook):
        simulator().parse_webhook(headers=headers, body=body)


def test_a_body_altered_after_signing_is_refused():
    body = body_of(status="declined", type="charge.declined")
    headers = signed(body)

    with pytest.raises(InvalidWebhook, match="does not match"):
        simulator().parse_webhook(headers=headers, body=body.replace(b'"declined"', b'"succeeded"'))


@pytest.mark.parametrize("age", [-1, 1])
def test_a_stale_or_future_signature_is_refused(settings, age):
    body = body_of()
    stamp = int(time.time()) - age * (settings.PGI_WEBHOOK_TOLERANCE_SECONDS + 30)

    with pytest.raises(InvalidWebhook, match="tolerance"):
        simulator().parse_webhook(headers=signed(body, timestamp=stamp), body=body)


def test_a_signature_within_the_tolerance_is_accepted(settings):
    body = body_of()
    stamp = int(time.time()) - settings.PGI_WEBHOOK_TOLERANCE_SECONDS + 30

    assert simulator().parse_webhook(headers=signed(body, timestamp=stamp), body=body)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"id": "evt_1", "data": {"status": "exploded"}}',
        body_of(type="charge.exploded"),
        body_of(status="declined"),  # a charge.succeeded event must say succeeded
        body_of(amount="lots"),
        body_of(amount="NaN"),
        body_of(id=7),
        body_of(merchantReference=None),
        body_of(type="refund.succeeded", status="succeeded"),  # a refund event without its refund fields
    ],
)
def test_a_signed_body_that_is_not_a_simulator_event_is_refused(body):
    with pytest.raises(InvalidWebhook):
        simulator().parse_webhook(headers=signed(body), body=body)


class Receiver:
    """A local HTTP server standing in for PGI's webhook endpoint: keeps what it receives and answers
    with `status`."""

    def __init__(self):
        self.received: list[tuple[str, dict, bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(two_simulators_configured):
    receiver = Receiver()
    two_simulators_configured.PGI_PUBLIC_URL = receiver.url + "/"
    yield receiver
    receiver.close()


@pytest.mark.parametrize(("capture", "status", "event_type"), [(True, "succeeded", "charge.succeeded"), (False, "authorized", "charge.authorized")])
def test_the_task_completes_a_pending_charge_and_posts_the_signed_webhook_to_its_gateway(receiver, capture, status, event_type):
    connector = SimulatorConnector("simulator_b", webhook_secret=SECRET)
    pending = connector.authorize(payment(account="account0202", capture=capture))

    simulator_webhook_send(pending.reference, "simulator_b")

    charge = charge_of(code="simulator_b")
    assert charge.status == status
    assert charge.captured_amount == (Decimal("50.00") if capture else None)
    [(path, headers, body)] = receiver.received
    assert path == "/v1/gateways/simulator_b/webhooks"
    assert headers["Content-Type"] == "application/json"
    [event] = connector.parse_webhook(headers={SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, body=body)
    assert (event.raw_type, event.payment_id, event.result.status, event.result.reference) == (
        event_type, "pay_1", GatewayStatus(status), pending.reference
    )


def test_the_task_raises_for_retry_until_pgi_answers_2xx_and_changes_the_charge_once(receiver):
    pending = simulator().authorize(payment(account="account0202"))
    receiver.status = 503

    with pytest.raises(requests.HTTPError):
        simulator_webhook_send(pending.reference, "simulator")
    captured_at = charge_of().captured_at
    receiver.status = 200
    simulator_webhook_send(pending.reference, "simulator")

    assert charge_of().captured_at == captured_at  # the retry found it settled and left it
    first, second = (json.loads(body) for _, _, body in receiver.received)
    assert first["id"] == second["id"]  # a retry is the same event: PGI drops the duplicate


def test_the_task_leaves_a_charge_that_is_no_longer_pending(receiver):
    connector = simulator()
    authorized = connector.authorize(payment(account="account0202", capture=False))
    simulator_webhook_send(authorized.reference, "simulator")
    connector.capture(capture_of(authorized, amount="10.00"))

    simulator_webhook_send(authorized.reference, "simulator")

    assert (charge_of().status, charge_of().captured_amount) == ("succeeded", Decimal("10.00"))
    assert json.loads(receiver.received[-1][2])["type"] == "charge.captured"


# --- the settlement report --------------------------------------------------------------------

DAY = datetime.date(2026, 11, 27)


def at(hour: int, minute: int = 0, day: datetime.date = DAY) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=UTC)


@pytest.fixture
def booked_day():
    """A ledger with lines on DAY and around it, on two simulators; returns the charges by payment id."""
    a, b = simulator("simulator"), simulator("simulator_b")
    a.authorize(payment("pay_full", amount="100.00"))
    partial = a.authorize(payment("pay_partial", amount="50.00", capture=False))
    a.capture(capture_of(partial, payment_id="pay_partial", amount="30.00"))
    a.authorize(payment("pay_yen", amount="5000", currency="JPY"))
    a.authorize(payment("pay_kwd", amount="12.345", currency="KWD"))
    a.authorize(payment("pay_half", amount="12.50"))
    a.authorize(payment("pay_late", amount="7.00"))  # captured the day after
    a.authorize(payment("pay_held", amount="9.00", capture=False))  # never captured
    a.authorize(payment("pay_declined", account="account0002"))
    full = charge_of("pay_full")
    a.refund(refund_of(full, "rfd_1", "10.00", payment_id="pay_full"))
    a.refund(refund_of(full, "rfd_failed", "500.00", payment_id="pay_full"))  # failed: not booked
    a.refund(refund_of(full, "rfd_late", "1.00", payment_id="pay_full"))
    b.authorize(payment("pay_on_b", amount="80.00"))  # the other simulator's ledger

    times = {
        "pay_full": at(9, 30), "pay_partial": at(11), "pay_yen": at(12), "pay_kwd": at(13), "pay_half": at(0),
        "pay_late": at(0, day=DAY + datetime.timedelta(days=1)), "pay_on_b": at(10),
    }
    for payment_id, moment in times.items():
        SimulatorCharge.objects.filter(idempotency_key=payment_id).update(captured_at=moment)
    refund_times = {"rfd_1": at(23, 59), "rfd_failed": at(14), "rfd_late": at(1, day=DAY + datetime.timedelta(days=1))}
    for refund_id, moment in refund_times.items():
        SimulatorRefund.objects.filter(refund_id=refund_id).update(created_at=moment)
    return {payment_id: charge_of(payment_id) for payment_id in times if payment_id != "pay_on_b"}


def expected_csv(charges) -> str:
    refund = SimulatorRefund.objects.get(refund_id="rfd_1")
    c = {payment_id: charge.reference for payment_id, charge in charges.items()}
    return (
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
        f"capture,{c['pay_half']},pay_half,,12.50,USD,0.43,2026-11-27T00:00:00Z,settled\n"
        f"capture,{c['pay_full']},pay_full,,100.00,USD,1.65,2026-11-27T09:30:00Z,settled\n"
        f"capture,{c['pay_partial']},pay_partial,,30.00,USD,0.67,2026-11-27T11:00:00Z,settled\n"
        f"capture,{c['pay_yen']},pay_yen,,5000,JPY,70,2026-11-27T12:00:00Z,settled\n"
        f"capture,{c['pay_kwd']},pay_kwd,,12.345,KWD,0.423,2026-11-27T13:00:00Z,settled\n"
        f"refund,{refund.reference},pay_full,rfd_1,10.00,USD,0.39,2026-11-27T23:59:00Z,refunded\n"
    )


def test_the_report_csv_of_a_day_lists_its_captures_and_refunds_with_fees(booked_day):
    assert simulator().report_csv(DAY) == expected_csv(booked_day)


def test_the_report_of_a_day_without_bookings_is_only_the_header(booked_day):
    assert simulator().report_csv(DAY - datetime.timedelta(days=3)) == (
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
    )


def test_fetch_report_reads_the_csv_back_into_report_lines(booked_day):
    lines = simulator().fetch_report(DAY)

    refund = SimulatorRefund.objects.get(refund_id="rfd_1")
    Kind = ReportLine.Kind
    assert lines == [
        ReportLine(Kind.PAYMENT, booked_day["pay_half"].reference, "pay_half", Decimal("12.50"), "USD", at(0), Decimal("0.43"), "", "settled"),
        ReportLine(Kind.PAYMENT, booked_day["pay_full"].reference, "pay_full", Decimal("100.00"), "USD", at(9, 30), Decimal("1.65"), "", "settled"),
        ReportLine(Kind.PAYMENT, booked_day["pay_partial"].reference, "pay_partial", Decimal("30.00"), "USD", at(11), Decimal("0.67"), "", "settled"),
        ReportLine(Kind.PAYMENT, booked_day["pay_yen"].reference, "pay_yen", Decimal("5000"), "JPY", at(12), Decimal("70"), "", "settled"),
        ReportLine(Kind.PAYMENT, booked_day["pay_kwd"].reference, "pay_kwd", Decimal("12.345"), "KWD", at(13), Decimal("0.423"), "", "settled"),
        ReportLine(Kind.REFUND, refund.reference, "pay_full", Decimal("10.00"), "USD", at(23, 59), Decimal("0.39"), "rfd_1", "refunded"),
    ]
    assert str(lines[0].amount) == "12.50" and str(lines[3].fee) == "70"


def test_the_report_of_the_other_simulator_holds_only_its_own_ledger(booked_day):
    [line] = simulator("simulator_b", fee_percent="0", fee_fixed="0.10").fetch_report(DAY)

    assert (line.payment_id, line.amount, line.fee, line.booked_at) == ("pay_on_b", Decimal("80.00"), Decimal("0.10"), at(10))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "kind,reference\n",
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\ncapture,sim_1\n",
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
        "payout,sim_1,pay_1,,1.00,USD,0.26,2026-11-27T00:00:00Z,settled\n",
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
        "capture,sim_1,pay_1,,one,USD,0.26,2026-11-27T00:00:00Z,settled\n",
        "record_type,simulator_reference,merchant_reference,refund_reference,amount,currency,fee,booked_at,status\n"
        "capture,sim_1,pay_1,,1.00,USD,0.26,27/11/2026,settled\n",
    ],
)
def test_a_file_that_is_not_a_simulator_report_is_refused(text):
    with pytest.raises(ReportFormatError):
        parse_report_csv(text)


# --- the management command -------------------------------------------------------------------


def command(*args) -> str:
    out = StringIO()
    call_command("simulator", *args, stdout=out)
    return out.getvalue()


def test_the_command_switches_an_outage_on_and_off(two_simulators_configured):
    assert command("outage", "simulator_b", "on") == "simulator_b: down (switched off)\n"
    assert simulator_outage("simulator_b") is True
    assert command("outage", "simulator_b", "status") == "simulator_b: down (switched off)\n"
    assert command("status") == "simulator: up\nsimulator_b: down (switched off)\n"
    with pytest.raises(GatewayUnavailable):
        simulator("simulator_b").authorize(payment())

    assert command("outage", "simulator_b", "off") == "simulator_b: up\n"
    assert simulator_outage("simulator_b") is False


def test_the_command_reports_a_simulator_configured_down(settings):
    settings.PGI_GATEWAYS = {
        "simulator": {"class": "gateways.simulator.connector.SimulatorConnector", "webhook_secret": SECRET, "outage": True}
    }

    assert command("outage", "simulator", "status") == "simulator: down (its `outage` option is set in settings)\n"


def test_the_command_switched_in_another_process_takes_this_one_down(two_simulators_configured):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pgi.settings"}  # same REDIS_URL and cache prefix
    done = subprocess.run(
        [sys.executable, "manage.py", "simulator", "outage", "simulator", "on"],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert simulator_outage("simulator") is True
    with pytest.raises(GatewayUnavailable):
        simulator().status(payment_id="pay_1")


def test_the_command_writes_the_report_file(two_simulators_configured, booked_day, tmp_path):
    target = tmp_path / "simulator-2026-11-27.csv"

    output = command("report", "simulator", "--day", "2026-11-27", "--out", str(target))

    assert target.read_text(encoding="utf-8") == expected_csv(booked_day)
    assert output == f"simulator: report of 2026-11-27 written to {target} (6 lines)\n"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_the_command_writes_the_report_to_standard_output(two_simulators_configured, booked_day):
    assert command("report", "simulator", "--day", "2026-11-27") == expected_csv(booked_day)


@pytest.mark.parametrize(
    "args",
    [
        ("outage", "nosuchgateway", "on"),
        ("report", "nosuchgateway", "--day", "2026-11-27"),
        ("report", "simulator", "--day", "27/11/2026"),
    ],
)
def test_the_command_refuses_an_unknown_gateway_or_a_bad_day(two_simulators_configured, args):
    with pytest.raises(CommandError):
        command(*args)
    assert simulator_outage("nosuchgateway") is False


# --- migration and admin ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_existing_charges_as_the_simulator_s():
    executor = MigrationExecutor(connection)
    before, after = [("gateways", "0002_routes_and_notifications")], [("gateways", "0003_simulator_full")]
    executor.migrate(before)
    try:
        OldCharge = executor.loader.project_state(before).apps.get_model("gateways", "SimulatorCharge")
        OldCharge.objects.create(
            reference="sim_old", idempotency_key="pay_old", amount=Decimal("12.0000"), currency="USD",
            account="account123", merchant_code="merchant456", status="succeeded",
        )
        OldCharge.objects.create(
            reference="sim_old_declined", idempotency_key="pay_old_declined", amount=Decimal("5.0000"), currency="USD",
            account="account0002", merchant_code="merchant456", status="declined", decline_code="DECLINED",
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)

    old, declined = SimulatorCharge.objects.get(reference="sim_old"), SimulatorCharge.objects.get(reference="sim_old_declined")
    assert (old.gateway, old.capture, old.captured_amount, old.captured_at) == ("simulator", True, Decimal("12.0000"), old.updated_at)
    assert (declined.gateway, declined.captured_amount, declined.captured_at) == ("simulator", None, None)
    refund = simulator().refund(refund_of(old, "rfd_old", "12.00", payment_id="pay_old"))
    assert refund.status is RefundStatus.SUCCEEDED


def test_the_admin_shows_the_ledger_with_its_gateway_and_the_refunds_read_only(admin_client, settings):
    # Source static names, so the pages render without a prior `collectstatic` (make test runs one).
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    connector = simulator("simulator_b")
    charged = connector.authorize(payment(amount="50.00"))
    connector.refund(refund_of(charged, "rfd_1", "20.00"))
    charge, refund = charge_of(code="simulator_b"), SimulatorRefund.objects.get()

    listing = admin_client.get(reverse("admin:gateways_simulatorcharge_changelist"), {"gateway": "simulator_b"})
    page = admin_client.get(reverse("admin:gateways_simulatorcharge_change", args=[charge.pk]))
    refunds = admin_client.get(reverse("admin:gateways_simulatorrefund_changelist"), {"q": "rfd_1"})
    refund_page = admin_client.get(reverse("admin:gateways_simulatorrefund_change", args=[refund.pk]))

    assert list(listing.context["cl"].result_list) == [charge]
    assert "simulator_b" in listing.content.decode()
    assert "Simulator ledger" in listing.content.decode()
    assert "20.00 USD" in page.content.decode()  # the refund inline
    assert refund.reference in page.content.decode()
    assert list(refunds.context["cl"].result_list) == [refund]
    assert "Simulator refunds" in refunds.content.decode()
    assert refund_page.status_code == 200
    assert "pay_1" in refund_page.content.decode()
    assert 'name="amount"' not in refund_page.content.decode()
    assert admin_client.get(reverse("admin:gateways_simulatorrefund_add")).status_code == 403
    assert admin_client.get(reverse("admin:gateways_simulatorrefund_delete", args=[refund.pk])).status_code == 403
