"""The Adyen connector against a fake Adyen over real HTTP (tests/gateways/fakes/adyen_server.py)."""

import datetime
import ssl
import threading
from decimal import Decimal

import pytest
import requests
import urllib3
from django.core.exceptions import ImproperlyConfigured

from gateways.adyen.connector import AdyenConnector, _never_connected
from gateways.base import (
    CaptureRequest,
    ErrorCode,
    GatewayError,
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
    WebhookReply,
)

from .fakes.adyen_server import (
    CHECKOUT_VERSION,
    DEFAULT_MERCHANT_ACCOUNT,
    adyen_error,
    basic_auth_header,
    closed_port_url,
    notification_body,
    notification_item,
    running_fake_adyen,
    sign_item,
)

OTHER_HMAC_KEY = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
READ_TIMEOUT = 0.5  # only for the connector that must time out; the others wait as long as a loaded CI needs


@pytest.fixture
def fake():
    with running_fake_adyen() as server:
        yield server


@pytest.fixture
def connector(fake):
    return AdyenConnector("adyen", **fake.connector_options(timeout=10))


@pytest.fixture
def impatient_connector(fake):
    return AdyenConnector("adyen", **fake.connector_options(timeout=READ_TIMEOUT))


def payment(
    payment_id="pay_01", amount="12.30", currency="EUR", account="shopper_42:8415718415172200", capture=True
) -> PaymentRequest:
    return PaymentRequest(
        payment_id=payment_id,
        amount=Decimal(amount),
        currency=currency,
        from_account=account,
        merchant_code="merchant456",
        capture=capture,
    )


def authorized(connector, payment_id="pay_01", amount="12.30"):
    result = connector.authorize(payment(payment_id, amount=amount, capture=False))
    assert result.status == GatewayStatus.AUTHORIZED
    return result


# --- authorize ---------------------------------------------------------------------------------


def test_authorize_with_capture_sends_a_stored_card_payment_and_succeeds(fake, connector):
    result = connector.authorize(payment())

    assert result.status == GatewayStatus.SUCCEEDED
    assert result.reference in fake.payments
    assert (result.amount, result.currency, result.error_code) == (Decimal("12.30"), "EUR", "")
    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", f"/{CHECKOUT_VERSION}/payments")
    assert sent.headers["idempotency-key"] == "pay_01"
    assert sent.headers["x-api-key"] == fake.api_key
    assert sent.body == {
        "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
        "reference": "pay_01",
        "amount": {"value": 1230, "currency": "EUR"},
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": "8415718415172200"},
        "shopperReference": "shopper_42",
        "shopperInteraction": "ContAuth",
        "recurringProcessingModel": "UnscheduledCardOnFile",
        "metadata": {"pgiCapture": "immediate", "pgiMerchant": "merchant456"},
        "captureDelayHours": 0,
    }


def test_authorize_without_capture_asks_adyen_for_manual_capture_and_is_authorized(fake, connector):
    result = connector.authorize(payment(capture=False))

    assert result.status == GatewayStatus.AUTHORIZED
    body = fake.payment_requests[0]
    assert body["additionalData"] == {"manualCapture": "true"}
    assert body["metadata"]["pgiCapture"] == "manual"
    assert "captureDelayHours" not in body


def test_a_shopper_reference_with_colons_keeps_them(fake, connector):
    connector.authorize(payment(account="shop:customer:7:8415718415172200"))

    body = fake.payment_requests[0]
    assert (body["shopperReference"], body["paymentMethod"]["storedPaymentMethodId"]) == (
        "shop:customer:7",
        "8415718415172200",
    )


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [
        ("12.5", "EUR", 1250),
        ("10", "JPY", 10),
        ("1.234", "KWD", 1234),
        # Adyen's table differs from ISO 4217 for these four.
        ("1500", "ISK", 150000),
        ("2500", "CLP", 250000),
        ("10000", "IDR", 10000),
        ("300", "CVE", 300),
    ],
)
def test_amounts_are_sent_in_adyens_minor_units_and_read_back_exactly(fake, connector, amount, currency, value):
    result = connector.authorize(payment(amount=amount, currency=currency))

    assert fake.payment_requests[0]["amount"] == {"value": value, "currency": currency}
    assert result.amount == Decimal(amount)
    assert isinstance(result.amount, Decimal)


@pytest.mark.parametrize(("amount", "currency"), [("10000.50", "IDR"), ("12.345", "EUR"), ("5", "XXX")])
def test_an_amount_adyen_cannot_carry_is_declined_without_calling_adyen(fake, connector, amount, currency):
    result = connector.authorize(payment(amount=amount, currency=currency))

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert currency in result.error_message
    assert fake.requests == []


@pytest.mark.parametrize("account", ["8415718415172200", "shopper_42:", ":8415718415172200", "NL91ABNA0417164300"])
def test_a_from_account_that_is_not_a_stored_payment_method_is_declined_locally(fake, connector, account):
    result = connector.authorize(payment(account=account))

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_ACCOUNT
    assert "storedPaymentMethodId" in result.error_message
    assert fake.requests == []


def test_an_iban_is_refused_with_a_message_that_says_so(fake, connector):
    result = connector.authorize(payment(account="NL91 ABNA 0417 1643 00"))

    assert "IBAN" in result.error_message


@pytest.mark.parametrize(
    ("reason_code", "error_code", "text"),
    [
        ("2", ErrorCode.DECLINED, "Refused"),
        ("5", ErrorCode.INVALID_ACCOUNT, "Blocked Card"),
        ("6", ErrorCode.CARD_EXPIRED, "Expired Card"),
        ("7", ErrorCode.INVALID_REQUEST, "Invalid Amount"),
        ("12", ErrorCode.INSUFFICIENT_FUNDS, "Not enough balance"),
        ("20", ErrorCode.FRAUD_SUSPECTED, "FRAUD"),
        ("26", ErrorCode.INVALID_ACCOUNT, "Revocation Of Auth"),
        ("28", ErrorCode.LIMIT_EXCEEDED, "Withdrawal amount exceeded"),
        ("38", ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required"),
        ("99", ErrorCode.DECLINED, "Refused"),  # a code newer than our table
    ],
)
def test_refusals_are_declined_with_the_mapped_code_and_adyens_reason(connector, reason_code, error_code, text):
    result = connector.authorize(payment(account=f"shopper_42:REFUSED_{reason_code}"))

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == error_code
    assert result.error_message == text
    assert result.reference  # Adyen keeps a record of refused payments too


@pytest.mark.parametrize(
    ("stored_id", "status", "error_code"),
    [
        ("PENDING_1", GatewayStatus.PENDING, ""),
        ("RECEIVED_1", GatewayStatus.PENDING, ""),
        ("REDIRECT_1", GatewayStatus.DECLINED, ErrorCode.AUTHENTICATION_REQUIRED),
        ("CHALLENGE_1", GatewayStatus.DECLINED, ErrorCode.AUTHENTICATION_REQUIRED),
        ("IDENTIFY_1", GatewayStatus.DECLINED, ErrorCode.AUTHENTICATION_REQUIRED),
        ("CANCELLED_1", GatewayStatus.CANCELLED, ""),
        ("ERROR_1", GatewayStatus.DECLINED, ErrorCode.GATEWAY_ERROR),
    ],
)
def test_result_codes_map_to_normalized_statuses(connector, stored_id, status, error_code):
    result = connector.authorize(payment(account=f"shopper_42:{stored_id}"))

    assert (result.status, result.error_code) == (status, error_code)


def test_an_unknown_stored_payment_method_is_declined_as_an_invalid_account(connector):
    result = connector.authorize(payment(account="shopper_42:UNKNOWN_1"))

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_ACCOUNT
    assert result.error_message == "803 PaymentDetail not found"


def test_a_422_is_a_decline_for_an_invalid_request_with_adyens_code_and_message(fake, connector):
    fake.fail_next(status=422, body=adyen_error(422, "14_030", "Return URL is missing.", "validation"))

    result = connector.authorize(payment())

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert result.error_message == "14_030 Return URL is missing."


# --- idempotency -------------------------------------------------------------------------------


def test_the_same_payment_twice_is_one_payment_at_adyen(fake, connector):
    first = connector.authorize(payment())
    second = connector.authorize(payment())

    assert second == first
    assert len(fake.payment_requests) == 1
    assert [r.headers["idempotency-key"] for r in fake.requests] == ["pay_01", "pay_01"]


def test_a_slow_answer_is_a_timeout_and_the_resend_gets_the_first_outcome_without_a_second_charge(
    fake, connector, impatient_connector
):
    fake.delay_next(READ_TIMEOUT * 6)

    with pytest.raises(GatewayTimeout):
        impatient_connector.authorize(payment())
    assert len(fake.payment_requests) == 1  # Adyen did charge

    replayed = connector.authorize(payment())

    assert replayed.status == GatewayStatus.SUCCEEDED
    assert replayed.reference == next(iter(fake.payments))
    assert len(fake.payment_requests) == 1


def test_a_connection_dropped_after_sending_is_a_timeout_not_an_outage(fake, connector):
    fake.drop_next()

    with pytest.raises(GatewayTimeout):
        connector.authorize(payment())
    assert len(fake.payment_requests) == 1


def test_a_key_still_in_progress_at_adyen_is_a_timeout_not_a_decline(fake, connector):
    fake.fail_next(status=422, body=adyen_error(422, "704", "request already processed or in progress", "validation"))

    with pytest.raises(GatewayTimeout, match="still being processed"):
        connector.authorize(payment())


def test_concurrent_payments_through_one_connector_each_get_their_own_answer(fake, connector):
    results = {}

    def pay(number):
        results[number] = connector.authorize(payment(f"pay_{number:02d}", amount=f"{number}.00"))

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 8
    for number, result in results.items():
        assert result.status == GatewayStatus.SUCCEEDED
        assert fake.payments[result.reference].reference == f"pay_{number:02d}"
        assert result.amount == Decimal(f"{number}.00")


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_service_unavailable_and_rate_limits_are_unavailable(fake, connector, status):
    fake.fail_next(status=status)

    with pytest.raises(GatewayUnavailable, match=f"HTTP {status}"):
        connector.authorize(payment())
    assert fake.payment_requests == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_server_errors_leave_the_outcome_unknown(fake, connector, status):
    # Adyen: 500 is "an unrecoverable error occurred while trying to perform the request"; it may
    # have been performed, so PGI must not fail over to another gateway.
    fake.fail_next(status=status)

    with pytest.raises(GatewayTimeout, match=f"HTTP {status}"):
        connector.authorize(payment())


def test_a_refused_connection_is_unavailable(fake):
    connector = AdyenConnector("adyen", **fake.connector_options(checkout_url=closed_port_url()))

    with pytest.raises(GatewayUnavailable, match="could not connect"):
        connector.authorize(payment())


def _connection_error(reason):
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v72/payments", reason))


@pytest.mark.parametrize(
    ("exc", "never_connected"),
    [
        (requests.exceptions.ConnectTimeout(), True),
        (_connection_error(urllib3.exceptions.NameResolutionError("checkout-test.adyen.com", None, OSError())), True),
        (_connection_error(urllib3.exceptions.NewConnectionError(None, "refused")), True),
        (requests.exceptions.SSLError(ssl.SSLCertVerificationError("certificate verify failed")), True),
        (requests.exceptions.ReadTimeout(), False),
        (requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.")), False),
        (requests.exceptions.ChunkedEncodingError(), False),
        (requests.exceptions.SSLError(ssl.SSLError("bad record mac")), False),
    ],
)
def test_only_failures_before_sending_count_as_never_connected(exc, never_connected):
    assert _never_connected(exc) is never_connected


def test_a_wrong_api_key_is_unavailable_with_a_message_that_names_the_setting(fake):
    connector = AdyenConnector("adyen", **fake.connector_options(api_key="AQE_revoked"))

    with pytest.raises(GatewayUnavailable) as raised:
        connector.authorize(payment())

    assert "HTTP 401" in str(raised.value)
    assert "PGI_ADYEN_API_KEY" in str(raised.value)
    assert fake.payment_requests == []


def test_a_merchant_account_the_credential_may_not_use_is_unavailable(fake):
    connector = AdyenConnector("adyen", **fake.connector_options(merchant_account="SomeoneElse"))

    with pytest.raises(GatewayUnavailable, match="HTTP 403"):
        connector.authorize(payment())


# --- capture, void, refund ---------------------------------------------------------------------


def test_capture_in_full_is_pending_until_the_notification(fake, connector):
    auth = authorized(connector)

    result = connector.capture(
        CaptureRequest(
            payment_id="pay_01",
            gateway_reference=auth.reference,
            amount=Decimal("12.30"),
            currency="EUR",
            merchant_code="merchant456",
        )
    )

    assert (result.status, result.reference, result.amount) == (GatewayStatus.PENDING, auth.reference, Decimal("12.30"))
    [sent] = fake.requests_to("/captures")
    assert sent.path == f"/{CHECKOUT_VERSION}/payments/{auth.reference}/captures"
    assert sent.headers["idempotency-key"] == "pay_01-capture"
    assert sent.body == {
        "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
        "reference": "pay_01",
        "amount": {"value": 1230, "currency": "EUR"},
    }


def test_a_partial_capture_sends_the_smaller_amount(fake, connector):
    auth = authorized(connector, amount="100.00")

    connector.capture(
        CaptureRequest("pay_01", auth.reference, amount=Decimal("40.5"), currency="EUR", merchant_code="merchant456")
    )

    assert fake.payments[auth.reference].captures[0]["amount"] == {"value": 4050, "currency": "EUR"}


def test_a_repeated_capture_reaches_adyen_once(fake, connector):
    auth = authorized(connector)
    request = CaptureRequest("pay_01", auth.reference, Decimal("12.30"), "EUR", "merchant456")

    first = connector.capture(request)
    second = connector.capture(request)

    assert first == second
    assert len(fake.payments[auth.reference].captures) == 1


def test_capturing_a_payment_adyen_does_not_know_is_declined(connector):
    result = connector.capture(CaptureRequest("pay_01", "NOSUCHPSP0000000", Decimal("1"), "EUR", "merchant456"))

    assert result.status == GatewayStatus.DECLINED
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert "167" in result.error_message


def test_a_capture_during_an_outage_is_unavailable(fake, connector):
    auth = authorized(connector)
    fake.fail_next(status=503)

    with pytest.raises(GatewayUnavailable):
        connector.capture(CaptureRequest("pay_01", auth.reference, Decimal("12.30"), "EUR", "merchant456"))


def test_void_is_pending_and_sends_no_amount(fake, connector):
    auth = authorized(connector)

    result = connector.void(VoidRequest("pay_01", auth.reference, Decimal("12.30"), "EUR", "merchant456"))

    assert (result.status, result.reference) == (GatewayStatus.PENDING, auth.reference)
    [sent] = fake.requests_to("/cancels")
    assert sent.headers["idempotency-key"] == "pay_01-void"
    assert sent.body == {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "reference": "pay_01"}


def test_refund_uses_the_refund_id_as_reference_and_idempotency_key(fake, connector):
    paid = connector.authorize(payment())

    result = connector.refund(
        RefundRequest(
            refund_id="rfd_01",
            payment_id="pay_01",
            gateway_reference=paid.reference,
            amount=Decimal("2.30"),
            currency="EUR",
            merchant_code="merchant456",
            reason="damaged",
        )
    )

    assert result.status == RefundStatus.PENDING
    assert result.reference and result.reference != paid.reference  # the refund's own pspReference
    assert (result.amount, result.currency) == (Decimal("2.30"), "EUR")
    [sent] = fake.requests_to("/refunds")
    assert sent.headers["idempotency-key"] == "rfd_01"
    assert sent.body == {
        "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
        "reference": "rfd_01",
        "amount": {"value": 230, "currency": "EUR"},
    }


def test_two_refunds_of_one_payment_are_two_refunds_and_a_repeat_is_not_a_third(fake, connector):
    paid = connector.authorize(payment())

    for refund_id in ("rfd_01", "rfd_02", "rfd_01"):
        connector.refund(RefundRequest(refund_id, "pay_01", paid.reference, Decimal("1.00"), "EUR", "merchant456"))

    assert [r["reference"] for r in fake.payments[paid.reference].refunds] == ["rfd_01", "rfd_02"]


def test_a_refused_refund_is_failed(connector):
    result = connector.refund(RefundRequest("rfd_01", "pay_01", "NOSUCHPSP0000000", Decimal("1"), "EUR", "m"))

    assert result.status == RefundStatus.FAILED
    assert result.error_code == ErrorCode.INVALID_REQUEST


def test_status_is_none_because_checkout_has_no_lookup(fake, connector):
    connector.authorize(payment())

    assert connector.status(payment_id="pay_01", gateway_reference="ANY") is None
    assert len(fake.requests) == 1


# --- webhooks ----------------------------------------------------------------------------------


def item(event_code="AUTHORISATION", **fields):
    values = {
        "psp_reference": "PSP0000000000001",
        "merchant_reference": "pay_01",
        "value": 1230,
        "currency": "EUR",
    }
    values.update(fields)
    return notification_item(event_code=event_code, **values)


def parse(connector, items, headers=None, **body_options):
    return connector.parse_webhook(headers=headers or {}, body=notification_body(items, **body_options))


@pytest.mark.parametrize("capture_mode", ["immediate", "manual", None])
def test_a_successful_authorisation_leaves_its_capture_to_pgis_record_whatever_its_unsigned_metadata_says(
    connector, capture_mode
):
    extra = {"metadata.pgiCapture": capture_mode} if capture_mode else {}

    [event] = parse(connector, [item(additional_data=extra)])

    assert event.operation == Operation.AUTHORIZE
    assert event.payment_id == "pay_01"
    assert event.event_id == "PSP0000000000001:AUTHORISATION:true"
    assert event.gateway_reference == "PSP0000000000001"
    assert event.raw_type == "AUTHORISATION"
    assert (event.result.status, event.captured_if_requested) == (GatewayStatus.AUTHORIZED, True)
    assert (event.result.reference, event.result.amount, event.result.currency) == (
        "PSP0000000000001",
        Decimal("12.30"),
        "EUR",
    )


def test_a_failed_authorisation_is_declined_with_the_reason_mapped(connector):
    [event] = parse(connector, [item(success=False, reason="Not enough balance")])

    assert event.result.status == GatewayStatus.DECLINED
    assert event.result.error_code == ErrorCode.INSUFFICIENT_FUNDS
    assert event.event_id == "PSP0000000000001:AUTHORISATION:false"


def modification(event_code, success=True, **fields):
    return item(
        event_code,
        psp_reference="PSPMODIFICATION1",
        original_reference="PSP0000000000001",
        success=success,
        **fields,
    )


@pytest.mark.parametrize(
    ("event_code", "success", "operation", "status"),
    [
        ("CAPTURE", True, Operation.CAPTURE, GatewayStatus.SUCCEEDED),
        ("CAPTURE", False, Operation.CAPTURE, GatewayStatus.DECLINED),
        ("CAPTURE_FAILED", True, Operation.CAPTURE, GatewayStatus.DECLINED),
        ("CANCELLATION", True, Operation.VOID, GatewayStatus.CANCELLED),
        ("CANCELLATION", False, Operation.VOID, GatewayStatus.DECLINED),
    ],
)
def test_capture_and_cancellation_notifications_name_the_payment(connector, event_code, success, operation, status):
    [event] = parse(connector, [modification(event_code, success)])

    assert (event.operation, event.result.status) == (operation, status)
    assert event.payment_id == "pay_01"
    assert event.gateway_reference == "PSP0000000000001"  # the payment, not the modification
    assert event.result.reference == "PSP0000000000001"
    assert event.event_id == f"PSPMODIFICATION1:{event_code}:{'true' if success else 'false'}"
    if status == GatewayStatus.DECLINED:
        assert event.result.error_code == ErrorCode.GATEWAY_ERROR


@pytest.mark.parametrize(
    ("event_code", "success", "status"),
    [
        ("REFUND", True, RefundStatus.SUCCEEDED),
        ("REFUND", False, RefundStatus.FAILED),
        ("REFUND_FAILED", True, RefundStatus.FAILED),
        ("REFUNDED_REVERSED", True, RefundStatus.FAILED),
    ],
)
def test_refund_notifications_name_the_refund_and_the_payments_psp_reference(connector, event_code, success, status):
    [event] = parse(connector, [modification(event_code, success, merchant_reference="rfd_01", value=230)])

    assert event.operation == Operation.REFUND
    assert (event.refund_id, event.payment_id, event.gateway_reference) == ("rfd_01", "", "PSP0000000000001")
    assert event.result is None
    assert event.refund_result.status == status
    assert (event.refund_result.reference, event.refund_result.amount) == ("PSPMODIFICATION1", Decimal("2.30"))


@pytest.mark.parametrize(("action", "operation"), [("cancel", Operation.VOID), ("refund", Operation.REFUND)])
def test_cancel_or_refund_follows_the_modification_action(connector, action, operation):
    [event] = parse(connector, [modification("CANCEL_OR_REFUND", additional_data={"modification.action": action})])

    assert event.operation == operation
    if operation == Operation.VOID:
        assert event.result.status == GatewayStatus.CANCELLED
    else:
        assert event.refund_result.status == RefundStatus.SUCCEEDED


def test_an_offer_closed_cancels_a_pending_payment(connector):
    [event] = parse(connector, [item("OFFER_CLOSED")])

    assert (event.operation, event.result.status) == (Operation.AUTHORIZE, GatewayStatus.CANCELLED)


@pytest.mark.parametrize("event_code", ["REPORT_AVAILABLE", "CHARGEBACK", "PENDING", "RECURRING_CONTRACT"])
def test_event_codes_pgi_does_not_act_on_yield_nothing(connector, event_code):
    assert parse(connector, [item(event_code)]) == []


def test_a_cancel_or_refund_without_an_action_yields_nothing(connector):
    assert parse(connector, [modification("CANCEL_OR_REFUND")]) == []


def test_a_batch_yields_one_event_per_item_in_order_and_skips_other_merchant_accounts(connector):
    items = [
        item(psp_reference="PSP0000000000001", merchant_reference="pay_01"),
        item(psp_reference="PSP0000000000002", merchant_reference="pay_02", merchant_account="AnotherShop"),
        modification("CAPTURE", merchant_reference="pay_03"),
        item("REPORT_AVAILABLE", psp_reference="report.csv"),
        modification("REFUND", merchant_reference="rfd_04"),
    ]

    events = parse(connector, items)

    assert [(e.raw_type, e.payment_id, e.refund_id) for e in events] == [
        ("AUTHORISATION", "pay_01", ""),
        ("CAPTURE", "pay_03", ""),
        ("REFUND", "", "rfd_04"),
    ]


def test_a_repeated_delivery_has_the_same_event_ids(connector):
    items = [item(), modification("CAPTURE")]

    first = parse(connector, items)
    again = parse(connector, items)

    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == 2


def test_an_old_event_date_is_accepted_because_adyen_retries_for_days(connector):
    [event] = parse(connector, [item(event_date="2020-01-01T00:00:00+01:00")])

    assert event.result.status == GatewayStatus.AUTHORIZED


def test_an_item_signed_with_another_key_is_refused(connector):
    with pytest.raises(InvalidWebhook, match="does not match"):
        parse(connector, [item()], hmac_key=OTHER_HMAC_KEY)


def test_one_bad_item_refuses_the_whole_batch(connector):
    good = sign_item(item(psp_reference="PSP0000000000001"))
    bad = sign_item(item(psp_reference="PSP0000000000002"), OTHER_HMAC_KEY)

    with pytest.raises(InvalidWebhook):
        parse(connector, [good, bad], hmac_key=None)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda i: i["amount"].update(value=999999),
        lambda i: i.update(merchantReference="pay_someone_else"),
        lambda i: i.update(success="false"),
        lambda i: i.update(eventCode="CAPTURE"),
    ],
)
def test_a_signed_field_changed_after_signing_is_refused(connector, tamper):
    signed = sign_item(item())
    tamper(signed)

    with pytest.raises(InvalidWebhook):
        parse(connector, [signed], hmac_key=None)


def test_an_item_without_a_signature_is_refused(connector):
    with pytest.raises(InvalidWebhook, match="no HMAC signature"):
        parse(connector, [item()], hmac_key=None)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"live": "false", "notificationItems": []}', b'{"live": "false", "notificationItems": [1]}'],
)
def test_a_body_that_is_not_a_notification_is_refused(connector, body):
    with pytest.raises(InvalidWebhook):
        connector.parse_webhook(headers={}, body=body)


def test_a_live_notification_sent_to_a_test_connector_is_refused(connector):
    with pytest.raises(InvalidWebhook, match="live"):
        parse(connector, [item()], live=True)


def test_without_an_hmac_key_every_notification_is_refused(fake):
    connector = AdyenConnector("adyen", **fake.connector_options(hmac_key=""))

    with pytest.raises(WebhookNotConfigured, match="PGI_ADYEN_HMAC_KEY"):
        parse(connector, [item()])


@pytest.fixture
def guarded(fake):
    """A connector that wants Basic credentials on webhooks."""
    return AdyenConnector(
        "adyen", **fake.connector_options(webhook_username="adyen_hook", webhook_password="s3cret:with:colons")
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic_auth_header("adyen_hook", "wrong")},
        {"Authorization": basic_auth_header("someone", "s3cret:with:colons")},
        {"Authorization": "Bearer s3cret"},
    ],
)
def test_missing_or_wrong_basic_credentials_are_refused(guarded, headers):
    with pytest.raises(InvalidWebhook, match="Basic"):
        parse(guarded, [item()], headers=headers)


@pytest.mark.parametrize("name", ["Authorization", "authorization"])
def test_the_right_basic_credentials_are_accepted(guarded, name):
    [event] = parse(guarded, [item()], headers={name: basic_auth_header("adyen_hook", "s3cret:with:colons")})

    assert event.payment_id == "pay_01"


def test_adyen_gets_the_reply_it_expects(connector):
    assert connector.webhook_reply == WebhookReply(b"[accepted]", "text/plain")
    assert connector.display_name == "Adyen"


# --- reports -----------------------------------------------------------------------------------

DAY = datetime.date(2026, 1, 15)


def row(record_type, **cells):
    base = {
        "Company Account": "PGICompany",
        "Merchant Account": DEFAULT_MERCHANT_ACCOUNT,
        "Psp Reference": "PSP0000000000001",
        "Merchant Reference": "pay_01",
        "Payment Method": "visa",
        "Booking Date": "2026-01-15 10:30:00",
        "TimeZone": "CET",
        "Main Currency": "EUR",
        "Main Amount": "12.30",
        "Record Type": record_type,
        "Payment Currency": "EUR",
    }
    base.update(cells)
    return base


def test_fetch_report_downloads_the_days_file_with_the_report_user_and_normalizes_booked_lines(fake, connector):
    fake.add_report(
        DAY,
        [
            row("Received", **{"Received (PC)": "12.30"}),
            row("Authorised", **{"Authorised (PC)": "12.30"}),
            row("SentForSettle", **{"Captured (PC)": "12.30"}),
            row(
                "Settled",
                **{
                    "Settlement Currency": "EUR",
                    "Payable (SC)": "12.04",
                    "Commission (SC)": "0.10",
                    "Markup (SC)": "0.06",
                    "Scheme Fees (SC)": "0.02",
                    "Interchange (SC)": "0.08",
                },
            ),
            row("SentForRefund", **{"Modification Merchant Reference": "rfd_01", "Main Amount": "2.30"}),
            row(
                "Refunded",
                **{
                    "Modification Merchant Reference": "rfd_01",
                    "Main Amount": "2.30",
                    "Settlement Currency": "USD",
                    "Commission (SC)": "0.12",
                },
            ),
            row("Chargeback", **{"Psp Reference": "PSP0000000000009", "Merchant Reference": "pay_09"}),
            row("Fee", **{"Psp Reference": "", "Merchant Reference": "", "Main Amount": "-5.00"}),
            row("SomethingNew"),
            row("Settled", **{"Merchant Account": "AnotherShop"}),
        ],
    )

    lines = connector.fetch_report(DAY)

    [download] = fake.requests
    assert download.path.endswith("/payments_accounting_report_2026_01_15.csv")
    assert download.headers["authorization"] == basic_auth_header(fake.report_username, fake.report_password)
    booked = datetime.datetime(2026, 1, 15, 9, 30, tzinfo=datetime.timezone.utc)
    assert lines == [
        ReportLine(
            kind=ReportLine.Kind.PAYMENT,
            gateway_reference="PSP0000000000001",
            payment_id="pay_01",
            amount=Decimal("12.30"),
            currency="EUR",
            booked_at=booked,
            fee=Decimal("0.26"),
            status="Settled",
        ),
        ReportLine(
            kind=ReportLine.Kind.REFUND,
            gateway_reference="PSP0000000000001",
            payment_id="pay_01",
            amount=Decimal("2.30"),
            currency="EUR",
            booked_at=booked,
            fee=None,  # charged in USD: not comparable with the EUR line
            refund_id="rfd_01",
            status="Refunded",
        ),
        ReportLine(
            kind=ReportLine.Kind.CHARGEBACK,
            gateway_reference="PSP0000000000009",
            payment_id="pay_09",
            amount=Decimal("12.30"),
            currency="EUR",
            booked_at=booked,
            status="Chargeback",
        ),
        ReportLine(
            kind=ReportLine.Kind.FEE,
            gateway_reference="",
            payment_id="",
            amount=Decimal("5.00"),
            currency="EUR",
            booked_at=booked,
            status="Fee",
        ),
        ReportLine(
            kind=ReportLine.Kind.OTHER,
            gateway_reference="PSP0000000000001",
            payment_id="pay_01",
            amount=Decimal("12.30"),
            currency="EUR",
            booked_at=booked,
            status="SomethingNew",
        ),
    ]


def test_a_report_not_generated_yet_is_unavailable(connector):
    with pytest.raises(GatewayUnavailable, match="no payments accounting report for 2026-01-15"):
        connector.fetch_report(DAY)


def test_a_report_with_wrong_credentials_is_unavailable(fake):
    fake.add_report(DAY, [row("Settled")])
    connector = AdyenConnector("adyen", **fake.connector_options(report_password="wrong"))

    with pytest.raises(GatewayUnavailable, match="HTTP 401"):
        connector.fetch_report(DAY)


def test_a_report_host_that_refuses_connections_is_unavailable(fake):
    connector = AdyenConnector("adyen", **fake.connector_options(report_url=closed_port_url()))

    with pytest.raises(GatewayUnavailable):
        connector.fetch_report(DAY)


def test_a_report_in_an_ambiguous_time_zone_is_an_error_not_a_guess(fake, connector):
    fake.add_report(DAY, [row("Settled", TimeZone="CST")])

    with pytest.raises(GatewayError, match="line 2") as raised:
        connector.fetch_report(DAY)
    assert not isinstance(raised.value, GatewayUnavailable)


# --- configuration -----------------------------------------------------------------------------


def test_live_needs_the_live_endpoint_prefix():
    with pytest.raises(ImproperlyConfigured, match="live_endpoint_prefix"):
        AdyenConnector("adyen", api_key="k", merchant_account="M", environment="live")


def test_the_hmac_key_must_be_hex():
    with pytest.raises(ImproperlyConfigured, match="hex"):
        AdyenConnector("adyen", api_key="k", merchant_account="M", hmac_key="not-hex")


def test_defaults_point_at_adyens_test_environment():
    connector = AdyenConnector("adyen", api_key="k", merchant_account="PGI_ECOM")

    assert connector.checkout.payments_api.baseUrl == f"https://checkout-test.adyen.com/{CHECKOUT_VERSION}"
    assert connector.report_url == "https://ca-test.adyen.com/reports/download/MerchantAccount/PGI_ECOM"


def test_live_uses_the_accounts_prefixed_endpoint():
    connector = AdyenConnector(
        "adyen", api_key="k", merchant_account="M", environment="live", live_endpoint_prefix="abc"
    )

    url = connector.adyen.client._determine_api_url("live", connector.checkout.payments_api.baseUrl + "/payments")
    assert url == f"https://abc-checkout-live.adyenpayments.com/checkout/{CHECKOUT_VERSION}/payments"
    assert connector.report_url == "https://ca-live.adyen.com/reports/download/MerchantAccount/M"

