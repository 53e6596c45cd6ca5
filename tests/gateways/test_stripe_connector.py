"""The Stripe connector through the real SDK, against the fake Stripe API (tests/gateways/fakes)."""

import datetime
import json
import socket
import ssl
import time
from decimal import Decimal

import pytest
import requests
import urllib3

from gateways.base import (
    CaptureRequest,
    ErrorCode,
    GatewayStatus,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidWebhook,
    WebhookNotConfigured,
    Operation,
    PaymentRequest,
    RefundRequest,
    RefundStatus,
    ReportLine,
    VoidRequest,
)
from gateways.stripe.amounts import AmountNotAccepted, from_minor_units, to_minor_units
from gateways.stripe.connector import StripeConnector, _sent_nothing

from .fakes.stripe_server import (
    API_KEY,
    WEBHOOK_SECRET,
    closed_port,
    port_never_accepting,
    running_fake_stripe,
    sign_webhook,
    stripe_event,
)

D = Decimal
UTC = datetime.UTC


@pytest.fixture
def fake():
    with running_fake_stripe() as server:
        yield server


def connector_for(url: str, *, api_key: str = API_KEY, timeout: float = 10.0, connect_timeout: float = 5.0):
    return StripeConnector(
        "stripe",
        api_key=api_key,
        webhook_secret=WEBHOOK_SECRET,
        api_base=url,
        timeout=timeout,
        connect_timeout=connect_timeout,
    )


@pytest.fixture
def gateway(fake):
    return connector_for(fake.url)


def payment(payment_id="pay_1", *, amount="12.34", currency="USD", account="pm_card_visa", capture=True, **more):
    return PaymentRequest(
        payment_id=payment_id,
        amount=D(amount),
        currency=currency,
        from_account=account,
        merchant_code="merchant456",
        description=more.pop("description", "Order 42"),
        capture=capture,
    )


def only_intent(fake) -> dict:
    assert len(fake.payment_intents) == 1
    return next(iter(fake.payment_intents.values()))


# --- authorize ----------------------------------------------------------------------------


def test_authorize_with_automatic_capture_charges_the_payment_method_once(gateway, fake):
    result = gateway.authorize(payment("pay_1", amount="12.34"))

    intent = only_intent(fake)
    assert result.status is GatewayStatus.SUCCEEDED
    assert result.reference == intent["id"]
    assert (result.amount, result.currency) == (D("12.34"), "USD")
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 1234
    sent = fake.requests_to("POST", "/v1/payment_intents")[0]
    assert sent.headers["idempotency-key"] == "pay_1"
    assert sent.params == {
        "amount": "1234",
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "capture_method": "automatic",
        "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
        "error_on_requires_action": "true",
        "metadata": {"pgi_payment_id": "pay_1", "pgi_merchant": "merchant456"},
        "description": "Order 42",
    }


def test_authorize_without_capture_holds_the_funds(gateway, fake):
    result = gateway.authorize(payment("pay_hold", amount="50", capture=False))

    intent = only_intent(fake)
    assert result.status is GatewayStatus.AUTHORIZED
    assert result.amount == D("50.00")
    assert intent["capture_method"] == "manual"
    assert (intent["status"], intent["amount_capturable"], intent["amount_received"]) == ("requires_capture", 5000, 0)


def test_authorize_twice_with_the_same_payment_id_creates_one_payment_intent(gateway, fake):
    first = gateway.authorize(payment("pay_twice"))
    second = gateway.authorize(payment("pay_twice"))

    assert second == first
    assert len(fake.payment_intents) == 1
    assert len(fake.requests_to("POST", "/v1/payment_intents")) == 2  # the second was answered from Stripe's record


def test_a_replayed_decline_is_the_same_decline(gateway, fake):
    first = gateway.authorize(payment("pay_d", account="pm_card_chargeDeclined"))
    second = gateway.authorize(payment("pay_d", account="pm_card_chargeDeclined"))

    assert second == first
    assert len(fake.payment_intents) == 1


def test_same_payment_id_with_other_parameters_is_an_unknown_outcome_not_a_new_charge(gateway, fake):
    gateway.authorize(payment("pay_conflict", amount="10.00"))

    with pytest.raises(GatewayTimeout, match="idempotent"):
        gateway.authorize(payment("pay_conflict", amount="11.00"))
    assert len(fake.payment_intents) == 1


@pytest.mark.parametrize(
    ("account", "code", "message"),
    [
        ("pm_card_chargeDeclined", ErrorCode.DECLINED, "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", ErrorCode.INSUFFICIENT_FUNDS, "Your card has insufficient funds."),
        ("pm_card_chargeDeclinedExpiredCard", ErrorCode.CARD_EXPIRED, "Your card has expired."),
        ("pm_card_chargeDeclinedFraudulent", ErrorCode.FRAUD_SUSPECTED, "Your card was declined."),
        ("pm_card_chargeDeclinedLostCard", ErrorCode.FRAUD_SUSPECTED, "Your card was declined."),
        ("pm_card_chargeDeclinedStolenCard", ErrorCode.FRAUD_SUSPECTED, "Your card was declined."),
        ("pm_card_chargeDeclinedIncorrectCvc", ErrorCode.INVALID_ACCOUNT, "Your card's security code is incorrect."),
        ("pm_card_chargeDeclinedVelocityLimitExceeded", ErrorCode.LIMIT_EXCEEDED, "Your card was declined."),
        ("pm_card_chargeDeclinedProcessingError", ErrorCode.GATEWAY_ERROR, "An error occurred while processing"),
        ("pm_card_authenticationRequired", ErrorCode.AUTHENTICATION_REQUIRED, "requires authentication"),
    ],
)
def test_card_declines_are_declined_results_with_the_payment_intent_as_reference(gateway, fake, account, code, message):
    result = gateway.authorize(payment("pay_declined", account=account))

    intent = only_intent(fake)
    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == code
    assert message in result.error_message
    assert result.reference == intent["id"]
    assert (result.amount, result.currency) == (D("12.34"), "USD")
    assert intent["status"] == "requires_payment_method"
    assert intent["amount_received"] == 0


def test_unknown_payment_method_is_declined_as_invalid_account_and_creates_nothing(gateway, fake):
    result = gateway.authorize(payment("pay_unknown", account="pm_card_doesNotExist"))

    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_ACCOUNT
    assert "No such PaymentMethod" in result.error_message
    assert result.reference == ""
    assert fake.payment_intents == {}


@pytest.mark.parametrize(
    ("amount", "currency", "sent", "returned"),
    [
        ("10.5", "USD", 1050, D("10.50")),
        ("500", "JPY", 500, D("500")),
        ("1.250", "KWD", 1250, D("1.250")),
        ("500", "ISK", 50000, D("500")),  # Stripe keeps ISK two-decimal
        ("500", "MGA", 500, D("500.00")),  # zero-decimal at Stripe, two at ISO 4217
    ],
)
def test_amounts_go_in_stripes_minor_units_and_come_back_as_decimals(gateway, fake, amount, currency, sent, returned):
    result = gateway.authorize(payment(f"pay_{currency}", amount=amount, currency=currency))

    assert only_intent(fake)["amount"] == sent
    assert only_intent(fake)["currency"] == currency.lower()
    assert result.status is GatewayStatus.SUCCEEDED
    assert result.amount == returned
    assert str(result.amount) == str(returned)
    assert result.currency == currency


@pytest.mark.parametrize(("amount", "currency"), [("1.255", "KWD"), ("10.50", "MGA"), ("1.5", "ISK"), ("1.001", "USD")])
def test_amounts_stripe_would_refuse_are_declined_before_any_call(gateway, fake, amount, currency):
    result = gateway.authorize(payment("pay_odd", amount=amount, currency=currency))

    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert fake.requests == []


def test_minor_unit_conversion_is_exact_for_large_amounts():
    assert to_minor_units(D("12345678901234.56"), "EUR") == 1234567890123456
    assert from_minor_units(1234567890123456, "EUR") == D("12345678901234.56")
    with pytest.raises(AmountNotAccepted):
        to_minor_units(D("1"), "XXX")


# --- capture and void ---------------------------------------------------------------------


def authorized(gateway, payment_id="pay_cap", amount="10.00"):
    result = gateway.authorize(payment(payment_id, amount=amount, currency="EUR", capture=False))
    assert result.status is GatewayStatus.AUTHORIZED
    return result


def capture_request(held, amount, payment_id="pay_cap"):
    return CaptureRequest(
        payment_id=payment_id, gateway_reference=held.reference, amount=D(amount), currency="EUR", merchant_code="m"
    )


def void_request(held, payment_id="pay_cap"):
    return VoidRequest(
        payment_id=payment_id, gateway_reference=held.reference, amount=held.amount, currency="EUR", merchant_code="m"
    )


def test_capture_in_full(gateway, fake):
    held = authorized(gateway)

    result = gateway.capture(capture_request(held, "10.00"))

    assert result.status is GatewayStatus.SUCCEEDED
    assert (result.reference, result.amount, result.currency) == (held.reference, D("10.00"), "EUR")
    assert fake.payment_intents[held.reference]["amount_received"] == 1000
    sent = fake.requests_to("POST", f"/v1/payment_intents/{held.reference}/capture")[0]
    assert sent.params == {"amount_to_capture": "1000"}
    assert sent.headers["idempotency-key"] == "pay_cap-capture"


def test_capture_in_part_releases_the_rest(gateway, fake):
    held = authorized(gateway)

    result = gateway.capture(capture_request(held, "6.00"))

    intent = fake.payment_intents[held.reference]
    assert result.status is GatewayStatus.SUCCEEDED
    assert result.amount == D("6.00")
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("succeeded", 600, 0)


def test_capture_sent_again_returns_the_first_answer(gateway, fake):
    held = authorized(gateway)

    first = gateway.capture(capture_request(held, "6.00"))
    second = gateway.capture(capture_request(held, "6.00"))

    assert second == first
    assert fake.payment_intents[held.reference]["amount_received"] == 600


def test_capture_of_a_payment_already_captured_says_so(gateway, fake):
    charged = gateway.authorize(payment("pay_auto", amount="10.00", currency="EUR"))

    result = gateway.capture(capture_request(charged, "10.00", payment_id="pay_auto"))

    assert result.status is GatewayStatus.SUCCEEDED
    assert result.error_code == ErrorCode.ALREADY_PROCESSED
    assert "status of succeeded" in result.error_message
    assert result.amount == D("10.00")


def test_capture_of_more_than_authorized_is_refused(gateway, fake):
    held = authorized(gateway)

    result = gateway.capture(capture_request(held, "10.01"))

    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert fake.payment_intents[held.reference]["status"] == "requires_capture"


def test_void_releases_the_authorization(gateway, fake):
    held = authorized(gateway)

    result = gateway.void(void_request(held))

    assert result.status is GatewayStatus.CANCELLED
    assert result.reference == held.reference
    assert fake.payment_intents[held.reference]["status"] == "canceled"
    sent = fake.requests_to("POST", f"/v1/payment_intents/{held.reference}/cancel")[0]
    assert sent.headers["idempotency-key"] == "pay_cap-void"


def test_void_after_capture_reports_the_captured_payment(gateway, fake):
    held = authorized(gateway)
    gateway.capture(capture_request(held, "10.00"))

    result = gateway.void(void_request(held))

    assert result.status is GatewayStatus.SUCCEEDED
    assert result.error_code == ErrorCode.ALREADY_PROCESSED


# --- refund -------------------------------------------------------------------------------


def refund_request(charged, amount, refund_id="ref_1", payment_id="pay_r", reason=""):
    return RefundRequest(
        refund_id=refund_id,
        payment_id=payment_id,
        gateway_reference=charged.reference,
        amount=D(amount),
        currency="USD",
        merchant_code="m",
        reason=reason,
    )


def test_refund_in_full(gateway, fake):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))

    result = gateway.refund(refund_request(charged, "20.00", reason="customer changed their mind"))

    refund = fake.refunds[result.reference]
    assert result.status is RefundStatus.SUCCEEDED
    assert (result.amount, result.currency) == (D("20.00"), "USD")
    assert refund["payment_intent"] == charged.reference
    assert refund["amount"] == 2000
    assert refund["metadata"] == {
        "pgi_refund_id": "ref_1",
        "pgi_payment_id": "pay_r",
        "pgi_reason": "customer changed their mind",
    }
    assert fake.requests_to("POST", "/v1/refunds")[0].headers["idempotency-key"] == "ref_1"


def test_partial_refunds_until_nothing_is_left(gateway, fake):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))

    first = gateway.refund(refund_request(charged, "5.00", refund_id="ref_a"))
    second = gateway.refund(refund_request(charged, "15.00", refund_id="ref_b"))
    third = gateway.refund(refund_request(charged, "1.00", refund_id="ref_c"))

    assert (first.status, first.amount) == (RefundStatus.SUCCEEDED, D("5.00"))
    assert (second.status, second.amount) == (RefundStatus.SUCCEEDED, D("15.00"))
    assert third.status is RefundStatus.FAILED
    assert third.error_code == ErrorCode.ALREADY_PROCESSED
    assert len(fake.refunds) == 2


def test_refund_of_more_than_is_left_fails(gateway, fake):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))

    result = gateway.refund(refund_request(charged, "20.01"))

    assert result.status is RefundStatus.FAILED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert fake.refunds == {}


def test_refund_sent_again_with_the_same_refund_id_refunds_once(gateway, fake):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))

    first = gateway.refund(refund_request(charged, "5.00"))
    second = gateway.refund(refund_request(charged, "5.00"))

    assert second == first
    assert len(fake.refunds) == 1


def test_a_pending_refund_is_pending(gateway, fake):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))
    fake.refund_status = "pending"

    result = gateway.refund(refund_request(charged, "5.00"))

    assert result.status is RefundStatus.PENDING


# --- status -------------------------------------------------------------------------------


def test_status_by_reference(gateway, fake):
    charged = gateway.authorize(payment("pay_s"))

    result = gateway.status(payment_id="pay_s", gateway_reference=charged.reference)

    assert result == charged
    assert fake.requests_to("GET", f"/v1/payment_intents/{charged.reference}")
    assert not fake.requests_to("GET", "/v1/payment_intents/search")


def test_status_without_reference_searches_the_metadata(gateway, fake):
    held = gateway.authorize(payment("pay_s", capture=False))

    result = gateway.status(payment_id="pay_s")

    assert result == held
    search = fake.requests_to("GET", "/v1/payment_intents/search")[0]
    assert search.params["query"] == "metadata['pgi_payment_id']:'pay_s'"


def test_status_of_a_declined_payment_keeps_the_decline_code(gateway, fake):
    gateway.authorize(payment("pay_s", account="pm_card_chargeDeclinedExpiredCard"))

    result = gateway.status(payment_id="pay_s")

    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.CARD_EXPIRED


def test_status_of_a_payment_stripe_never_saw_is_none(gateway, fake):
    gateway.authorize(payment("pay_other"))

    assert gateway.status(payment_id="pay_unknown") is None


def test_status_is_none_while_stripes_search_has_not_caught_up(fake):
    fake.search_lag = 60
    gateway = connector_for(fake.url)
    gateway.authorize(payment("pay_new"))

    assert gateway.status(payment_id="pay_new") is None


def test_status_with_an_unknown_reference_falls_back_to_the_search(gateway, fake):
    charged = gateway.authorize(payment("pay_s"))

    assert gateway.status(payment_id="pay_s", gateway_reference="pi_unknown") == charged


@pytest.mark.parametrize(
    ("stripe_status", "status", "code"),
    [
        ("processing", GatewayStatus.PENDING, ""),
        ("requires_action", GatewayStatus.DECLINED, ErrorCode.AUTHENTICATION_REQUIRED),
        ("canceled", GatewayStatus.CANCELLED, ""),
        ("requires_capture", GatewayStatus.AUTHORIZED, ""),
    ],
)
def test_status_maps_every_payment_intent_status(gateway, fake, stripe_status, status, code):
    held = gateway.authorize(payment("pay_s", capture=False))
    fake.set_status(held.reference, stripe_status)

    result = gateway.status(payment_id="pay_s", gateway_reference=held.reference)

    assert (result.status, result.error_code) == (status, code)


def test_a_payment_waiting_for_3d_secure_is_declined(gateway, fake):
    # Confirmed without error_on_requires_action (not by PGI: by hand, or by another integration),
    # it waits in requires_action for a shopper PGI cannot reach.
    intent = fake.create_payment_intent(
        {
            "amount": "100",
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": "true",
            "metadata": {"pgi_payment_id": "pay_3ds"},
        }
    )

    result = gateway.status(payment_id="pay_3ds", gateway_reference=intent["id"])

    assert intent["status"] == "requires_action"
    assert result.status is GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.AUTHENTICATION_REQUIRED


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_to_a_payment_is_an_unknown_outcome(gateway, fake, status):
    # Stripe documents 5xx as indeterminate: failing over could charge the shopper twice.
    fake.fail_next(status)

    with pytest.raises(GatewayTimeout, match=str(status)):
        gateway.authorize(payment("pay_5xx"))


def test_a_server_error_after_stripe_charged_is_settled_by_the_status_query(gateway, fake):
    fake.fail_next(500, after_processing=True)

    with pytest.raises(GatewayTimeout):
        gateway.authorize(payment("pay_late"))
    with pytest.raises(GatewayTimeout):  # Stripe replays its saved 500 for the same key
        gateway.authorize(payment("pay_late"))

    intent = only_intent(fake)
    assert intent["status"] == "succeeded"
    result = gateway.status(payment_id="pay_late")
    assert (result.status, result.reference) == (GatewayStatus.SUCCEEDED, intent["id"])


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_to_a_read_is_unavailable(gateway, fake, status):
    charged = gateway.authorize(payment("pay_s"))
    fake.fail_next(status)

    with pytest.raises(GatewayUnavailable, match=str(status)):
        gateway.status(payment_id="pay_s", gateway_reference=charged.reference)


def test_rate_limited_is_unavailable_and_nothing_was_charged(gateway, fake):
    fake.fail_next(429)

    with pytest.raises(GatewayUnavailable, match="429"):
        gateway.authorize(payment("pay_429"))
    assert fake.payment_intents == {}


def test_the_sdk_does_not_retry_on_its_own(gateway, fake):
    fake.fail_next(503)  # the SDK's default would retry a 503

    with pytest.raises(GatewayUnavailable):
        gateway.status(payment_id="pay_x", gateway_reference="pi_x")
    assert len(fake.requests) == 1


def test_a_wrong_api_key_is_unavailable_with_a_clear_message(fake):
    gateway = connector_for(fake.url, api_key="sk_test_wrong_key_1234")

    with pytest.raises(GatewayUnavailable, match="refused PGI's API key") as raised:
        gateway.authorize(payment("pay_401"))
    assert "401" in str(raised.value)
    assert fake.payment_intents == {}


def test_a_key_without_permission_is_unavailable(gateway, fake):
    fake.fail_next(403)

    with pytest.raises(GatewayUnavailable, match="403"):
        gateway.authorize(payment("pay_403"))


def test_no_api_key_configured_sends_nothing(fake):
    gateway = StripeConnector("stripe", api_key="", webhook_secret="", api_base=fake.url)

    with pytest.raises(GatewayUnavailable, match="no Stripe API key"):
        gateway.authorize(payment("pay_nokey"))
    assert fake.requests == []


def test_connection_refused_is_unavailable():
    with closed_port() as url:
        gateway = connector_for(url)
        with pytest.raises(GatewayUnavailable, match="could not reach Stripe"):
            gateway.authorize(payment("pay_refused"))


def test_connect_timeout_is_unavailable():
    with port_never_accepting() as url:
        gateway = connector_for(url, connect_timeout=0.3, timeout=5)
        started = time.monotonic()
        with pytest.raises(GatewayUnavailable, match="ConnectTimeout"):
            gateway.authorize(payment("pay_connect_timeout"))
        assert time.monotonic() - started < 3


def test_read_timeout_on_a_payment_is_an_unknown_outcome_and_stripe_did_charge(fake):
    gateway = connector_for(fake.url, timeout=0.3)
    fake.delay_next(2.0)

    with pytest.raises(GatewayTimeout, match="may have been processed"):
        gateway.authorize(payment("pay_slow"))

    assert len(fake.requests) == 1  # no retry behind PGI's back
    assert only_intent(fake)["status"] == "succeeded"
    # Recovery asks again with the same key and gets Stripe's first answer, not a second charge.
    assert connector_for(fake.url).authorize(payment("pay_slow")).status is GatewayStatus.SUCCEEDED
    assert len(fake.payment_intents) == 1


def test_connection_dropped_after_sending_is_an_unknown_outcome(gateway, fake):
    fake.drop_next()

    with pytest.raises(GatewayTimeout, match="may have been processed"):
        gateway.authorize(payment("pay_dropped"))
    assert only_intent(fake)["status"] == "succeeded"


def test_read_timeout_on_a_status_query_is_unavailable(fake):
    gateway = connector_for(fake.url, timeout=0.3)
    fake.delay_next(2.0)

    with pytest.raises(GatewayUnavailable):
        gateway.status(payment_id="pay_s", gateway_reference="pi_x")


def test_timeouts_on_capture_void_and_refund_are_unknown_outcomes(fake):
    patient = connector_for(fake.url)
    held = authorized(patient, payment_id="pay_t")
    charged = patient.authorize(payment("pay_t2"))
    gateway = connector_for(fake.url, timeout=0.3)

    fake.delay_next(2.0, times=3)
    with pytest.raises(GatewayTimeout):
        gateway.capture(capture_request(held, "5.00", payment_id="pay_t"))
    with pytest.raises(GatewayTimeout):
        gateway.void(void_request(held, payment_id="pay_t"))
    with pytest.raises(GatewayTimeout):
        gateway.refund(refund_request(charged, "1.00", payment_id="pay_t2"))


def test_connect_and_read_failures_are_told_apart_from_the_transport_error():
    def connection_error(reason):
        return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))

    dns = urllib3.exceptions.NameResolutionError("api.stripe.com", None, socket.gaierror("Name or service not known"))
    refused = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
    bad_certificate = urllib3.exceptions.SSLError(ssl.SSLCertVerificationError("certificate verify failed"))
    tls_reset = urllib3.exceptions.SSLError(ssl.SSLError("record layer failure"))
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))

    assert _sent_nothing(connection_error(dns))
    assert _sent_nothing(connection_error(refused))
    assert _sent_nothing(requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/", bad_certificate)))
    assert _sent_nothing(requests.exceptions.ConnectTimeout("connect timeout"))
    assert not _sent_nothing(requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/", tls_reset)))
    assert not _sent_nothing(requests.exceptions.ConnectionError(dropped))
    assert not _sent_nothing(requests.exceptions.ReadTimeout("read timeout"))
    assert not _sent_nothing(requests.exceptions.ChunkedEncodingError("body cut short"))
    assert not _sent_nothing(None)


# --- webhooks -----------------------------------------------------------------------------


@pytest.fixture
def tolerance(settings):
    # Tighter than the SDK's default (300 s), so the tests show the setting is the one applied.
    settings.PGI_WEBHOOK_TOLERANCE_SECONDS = 60
    return 60


def deliver(gateway, body: bytes, *, timestamp=None, secret=WEBHOOK_SECRET, header="Stripe-Signature"):
    return gateway.parse_webhook(headers={header: sign_webhook(body, secret, timestamp)}, body=body)


def test_payment_succeeded_event_for_automatic_capture_is_the_authorization(gateway, fake, tolerance):
    charged = gateway.authorize(payment("pay_w", amount="12.34"))
    body = stripe_event("payment_intent.succeeded", fake.payment_intents[charged.reference], event_id="evt_1")

    [event] = deliver(gateway, body)

    assert (event.event_id, event.operation, event.payment_id) == ("evt_1", Operation.AUTHORIZE, "pay_w")
    assert (event.gateway_reference, event.raw_type) == (charged.reference, "payment_intent.succeeded")
    assert event.result == charged


def test_payment_succeeded_event_for_manual_capture_is_the_capture(gateway, fake, tolerance):
    held = authorized(gateway, payment_id="pay_w")
    gateway.capture(capture_request(held, "4.00", payment_id="pay_w"))
    body = stripe_event("payment_intent.succeeded", fake.payment_intents[held.reference])

    [event] = deliver(gateway, body)

    assert event.operation is Operation.CAPTURE
    assert (event.result.status, event.result.amount) == (GatewayStatus.SUCCEEDED, D("4.00"))


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "operation", "status"),
    [
        ("payment_intent.amount_capturable_updated", "requires_capture", Operation.AUTHORIZE, GatewayStatus.AUTHORIZED),
        ("payment_intent.processing", "processing", Operation.AUTHORIZE, GatewayStatus.PENDING),
        ("payment_intent.canceled", "canceled", Operation.VOID, GatewayStatus.CANCELLED),
    ],
)
def test_payment_intent_events(gateway, fake, tolerance, event_type, stripe_status, operation, status):
    held = authorized(gateway, payment_id="pay_w")
    intent = fake.set_status(held.reference, stripe_status)

    [event] = deliver(gateway, stripe_event(event_type, intent))

    assert (event.operation, event.payment_id, event.result.status) == (operation, "pay_w", status)
    assert event.result.reference == held.reference


def test_payment_failed_event_carries_the_decline_code(gateway, fake, tolerance):
    declined = gateway.authorize(payment("pay_w", account="pm_card_chargeDeclinedInsufficientFunds"))

    [event] = deliver(gateway, stripe_event("payment_intent.payment_failed", fake.payment_intents[declined.reference]))

    assert (event.operation, event.result.status) == (Operation.AUTHORIZE, GatewayStatus.DECLINED)
    assert event.result.error_code == ErrorCode.INSUFFICIENT_FUNDS
    assert event.result.error_message == "Your card has insufficient funds."


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "status"),
    [
        ("refund.created", "succeeded", RefundStatus.SUCCEEDED),
        ("refund.updated", "pending", RefundStatus.PENDING),
        ("refund.failed", "failed", RefundStatus.FAILED),
        ("charge.refund.updated", "canceled", RefundStatus.FAILED),
    ],
)
def test_refund_events(gateway, fake, tolerance, event_type, stripe_status, status):
    charged = gateway.authorize(payment("pay_r", amount="20.00"))
    refunded = gateway.refund(refund_request(charged, "5.00", refund_id="ref_w"))
    refund = fake.refunds[refunded.reference]
    refund["status"] = stripe_status
    if stripe_status == "failed":
        refund["failure_reason"] = "expired_or_canceled_card"

    [event] = deliver(gateway, stripe_event(event_type, refund))

    assert (event.operation, event.payment_id, event.refund_id) == (Operation.REFUND, "pay_r", "ref_w")
    assert event.gateway_reference == charged.reference
    assert event.result is None
    assert (event.refund_result.status, event.refund_result.reference) == (status, refunded.reference)
    assert event.refund_result.amount == D("5.00")
    if stripe_status == "failed":
        assert event.refund_result.error_code == ErrorCode.CARD_EXPIRED


def test_an_event_type_pgi_does_not_act_on_is_acknowledged_with_nothing(gateway, tolerance):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer", "metadata": {}})

    assert deliver(gateway, body) == []


def test_an_event_without_pgi_metadata_has_no_payment_id(gateway, fake, tolerance):
    intent = fake.create_payment_intent(
        {"amount": "100", "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true"}
    )

    [event] = deliver(gateway, stripe_event("payment_intent.succeeded", intent))

    assert event.payment_id == ""
    assert event.gateway_reference == intent["id"]


def test_the_signature_header_is_found_whatever_its_case(gateway, fake, tolerance):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})

    assert deliver(gateway, body, header="stripe-signature") == []


def test_a_signature_with_another_secret_is_refused(gateway, tolerance):
    body = stripe_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})

    with pytest.raises(InvalidWebhook, match="signature"):
        deliver(gateway, body, secret="whsec_someone_else")


def test_a_body_changed_after_signing_is_refused(gateway, tolerance):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    header = sign_webhook(body)

    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(headers={"Stripe-Signature": header}, body=body.replace(b"cus_1", b"cus_2"))


def test_a_stale_timestamp_beyond_the_tolerance_is_refused(gateway, tolerance):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})

    with pytest.raises(InvalidWebhook, match="tolerance"):
        deliver(gateway, body, timestamp=int(time.time()) - tolerance - 5)
    assert deliver(gateway, body, timestamp=int(time.time()) - tolerance + 20) == []


def test_a_missing_or_malformed_signature_header_is_refused(gateway, tolerance):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})

    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(headers={}, body=body)
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(headers={"Stripe-Signature": "v1=abc"}, body=body)


def test_a_signed_body_that_is_not_an_event_is_refused(gateway, tolerance):
    for body in (b"not json", json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode()):
        with pytest.raises(InvalidWebhook):
            deliver(gateway, body)


def test_no_webhook_secret_configured_refuses_every_notification(fake, tolerance):
    gateway = StripeConnector("stripe", api_key="sk_test_x", webhook_secret="", api_base=fake.url)
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})

    with pytest.raises(WebhookNotConfigured):
        gateway.parse_webhook(headers={"Stripe-Signature": sign_webhook(body, "")}, body=body)
    assert gateway.webhook_problem()


# --- report -------------------------------------------------------------------------------


def at(day: datetime.date, hour: int) -> int:
    return int(datetime.datetime.combine(day, datetime.time(hour), tzinfo=UTC).timestamp())


def test_report_lists_the_days_balance_transactions_across_pages(fake):
    day = datetime.date(2026, 11, 20)
    fake.max_page_size = 2  # forces several pages
    gateway = connector_for(fake.url)
    fake.now = lambda: at(day, 9)
    charged = gateway.authorize(payment("pay_a", amount="100.00"))
    fake.now = lambda: at(day, 10)
    refunded = gateway.refund(refund_request(charged, "30.00", refund_id="ref_a", payment_id="pay_a"))
    fake.now = lambda: at(day, 11)
    disputed = gateway.authorize(payment("pay_b", amount="40.00"))
    fake.add_dispute(disputed.reference, created=at(day, 12))
    fake.add_balance_transaction(type="stripe_fee", amount=-250, created=at(day, 13), description="Radar")
    fake.add_balance_transaction(type="payout", amount=-5000, created=at(day, 14))
    fake.now = lambda: at(day - datetime.timedelta(days=1), 23)
    gateway.authorize(payment("pay_yesterday"))
    fake.now = lambda: at(day + datetime.timedelta(days=1), 0)
    gateway.authorize(payment("pay_tomorrow"))

    lines = gateway.fetch_report(day)

    Kind = ReportLine.Kind
    assert [(line.kind, line.payment_id, line.amount) for line in lines] == [
        (Kind.PAYMENT, "pay_a", D("100.00")),
        (Kind.REFUND, "pay_a", D("30.00")),
        (Kind.PAYMENT, "pay_b", D("40.00")),
        (Kind.CHARGEBACK, "pay_b", D("40.00")),
        (Kind.FEE, "", D("2.50")),
        (Kind.OTHER, "", D("50.00")),
    ]
    payment_line, refund_line, _, chargeback, fee, _ = lines
    assert (payment_line.gateway_reference, payment_line.currency) == (charged.reference, "USD")
    assert payment_line.fee == D("3.20")  # the fake's 2.9 % + 0.30
    assert (refund_line.gateway_reference, refund_line.refund_id) == (refunded.reference, "ref_a")
    assert (chargeback.gateway_reference, chargeback.fee) == (disputed.reference, D("15.00"))
    assert fee.gateway_reference.startswith("txn_")
    assert payment_line.booked_at == datetime.datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert all(line.booked_at.tzinfo is UTC for line in lines)
    pages = fake.requests_to("GET", "/v1/balance_transactions")
    assert len(pages) == 3
    assert pages[0].params["created"] == {"gte": str(at(day, 0)), "lt": str(at(day + datetime.timedelta(days=1), 0))}
    assert pages[0].params["expand"] == ["data.source"]
    assert all(page.params["created"] == pages[0].params["created"] for page in pages)


def test_report_of_a_quiet_day_is_empty(gateway):
    assert gateway.fetch_report(datetime.date(2020, 1, 1)) == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_report_that_cannot_be_fetched_is_unavailable(gateway, fake, status):
    fake.fail_next(status)

    with pytest.raises(GatewayUnavailable):
        gateway.fetch_report(datetime.date(2026, 11, 20))


def test_report_when_stripe_is_unreachable_is_unavailable():
    with closed_port() as url:
        with pytest.raises(GatewayUnavailable):
            connector_for(url).fetch_report(datetime.date(2026, 11, 20))


# --- configuration ------------------------------------------------------------------------


def test_the_registry_builds_it_from_settings(settings, fake):
    from gateways.registry import get_connector

    settings.PGI_GATEWAYS = {
        "stripe": {
            "class": "gateways.stripe.connector.StripeConnector",
            "api_key": fake.api_key,
            "webhook_secret": WEBHOOK_SECRET,
            "api_base": fake.url,
            "timeout": 7.5,
            "connect_timeout": 1.5,
        }
    }

    connector = get_connector("stripe")

    assert isinstance(connector, StripeConnector)
    assert (connector.code, connector.display_name) == ("stripe", "Stripe")
    assert (connector.timeout, connector.connect_timeout) == (7.5, 1.5)
    assert connector.authorize(payment("pay_registry")).status is GatewayStatus.SUCCEEDED
