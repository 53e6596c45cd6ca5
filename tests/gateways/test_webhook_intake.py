"""Webhook intake under hostile input: every delivery to every connector is answered 2xx or 4xx in
the error format, never 500; a verified delivery that cannot be read is INVALID_NOTIFICATION, not
INVALID_SIGNATURE; a gateway without a secret of its own (or with a public one) accepts nothing."""

import copy
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st

from gateways.models import GatewayNotification
from gateways.simulator.webhooks import SIGNATURE_HEADER, sign
from payments.models import GatewayOperation, Payment, PaymentStatus

from ..api.helpers import assert_error
from ..conftest import simulator_options
from ..factories import PaymentFactory
from .fakes.adyen_server import notification_body, notification_item, running_fake_adyen, sign_item
from .fakes.stripe_server import API_KEY, WEBHOOK_SECRET, sign_webhook, stripe_event

pytestmark = pytest.mark.django_db

SIMULATOR_SECRET = "whsec_" + "a1" * 32


@pytest.fixture
def gateways(settings):
    """All three connectors configured, each with a secret of its own."""
    with running_fake_adyen() as adyen:
        settings.PGI_GATEWAYS = {
            "simulator": simulator_options(webhook_secret=SIMULATOR_SECRET),
            "stripe": {
                "class": "gateways.stripe.connector.StripeConnector",
                "api_key": API_KEY,
                "webhook_secret": WEBHOOK_SECRET,
                "api_base": "http://127.0.0.1:9",
            },
            "adyen": {"class": "gateways.adyen.connector.AdyenConnector", **adyen.connector_options()},
        }
        yield adyen


def post(client, code: str, body: bytes, headers: dict | None = None):
    return client.post(f"/v1/gateways/{code}/webhooks", data=body, content_type="application/json", headers=headers or {})


def simulator_headers(body: bytes, secret: str = SIMULATOR_SECRET) -> dict:
    return {SIGNATURE_HEADER: sign(secret=secret, timestamp=int(time.time()), body=body)}


def simulator_event(**data) -> dict:
    fields = {
        "reference": "sim_1",
        "merchantReference": "pay_unknown",
        "status": "succeeded",
        "amount": "10.00",
        "currency": "USD",
    }
    fields.update(data)
    return {"id": "evt_sim_1", "type": "charge.succeeded", "created": int(time.time()), "data": fields}


def intent(**fields) -> dict:
    obj = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1000,
        "amount_received": 1000,
        "amount_capturable": 0,
        "currency": "usd",
        "status": "succeeded",
        "capture_method": "automatic",
        "metadata": {"pgi_payment_id": "pay_unknown"},
    }
    obj.update(fields)
    return obj


def adyen_item(**fields) -> dict:
    values = {"psp_reference": "PSP0000000000001", "merchant_reference": "pay_unknown", "value": 1230, "currency": "EUR"}
    values.update(fields)
    return notification_item(event_code="AUTHORISATION", **values)


def assert_no_notification_stored():
    assert not GatewayNotification.objects.exists()


# --- the examples found against the running stack ---------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"t={'9' * 400},v1=abc",  # OverflowError comparing with the clock
        "t=NOW,v1=ünïcödé",  # TypeError in compare_digest (NOW: the clock when the test runs)
        f"t={'٣' * 10},v1=abc",  # digits int() takes but that are not a unix timestamp
        "t=,v1=",
        "garbage",
    ],
)
def test_malformed_simulator_signature_header_is_400_invalid_signature(gateways, client, header):
    header = header.replace("NOW", str(int(time.time())))
    response = post(client, "simulator", json.dumps(simulator_event()).encode(), {SIGNATURE_HEADER: header})

    assert_error(response, 400, "INVALID_SIGNATURE")
    assert_no_notification_stored()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(simulator_event(reference="sim_\x00_1")).encode(),
        json.dumps(simulator_event(merchantReference="pay_\x00")).encode(),
        json.dumps(simulator_event(amount="9e999999999999999999")).encode(),
        json.dumps(simulator_event(amount="1e-999999999")).encode(),
        json.dumps(simulator_event(reference="sim_\ud800")).encode(),  # a lone surrogate
    ],
    ids=["nested", "nul-reference", "nul-payment-id", "huge-amount", "tiny-amount", "surrogate"],
)
def test_signed_but_malformed_simulator_body_is_400_invalid_notification(gateways, client, body):
    response = post(client, "simulator", body, simulator_headers(body))

    assert_error(response, 400, "INVALID_NOTIFICATION")
    assert_no_notification_stored()


def test_two_signed_events_sharing_their_first_255_characters_are_refused_not_taken_as_duplicates(gateways, client):
    shared = "evt_" + "x" * 251
    answers = []
    for last in "12":
        body = json.dumps({**simulator_event(), "id": shared + last}).encode()
        answers.append(post(client, "simulator", body, simulator_headers(body)))

    for answer in answers:
        assert_error(answer, 400, "INVALID_NOTIFICATION")
    assert_no_notification_stored()


def test_a_signed_event_id_as_long_as_its_column_is_stored_whole(gateways, client):
    event_id = "evt_" + "x" * 251
    body = json.dumps({**simulator_event(), "id": event_id}).encode()

    assert post(client, "simulator", body, simulator_headers(body)).status_code == 200
    assert GatewayNotification.objects.get().event_id == event_id


@pytest.mark.parametrize(
    "data",
    [
        {"merchantReference": "pay_" + "x" * 61},
        {"reference": "sim_" + "x" * 125},
        {"currency": "USDX"},
    ],
    ids=["payment-id", "gateway-reference", "currency"],
)
def test_a_signed_identifier_longer_than_its_column_is_refused_never_cut(gateways, client, data):
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway="simulator")
    body = json.dumps(simulator_event(**{"merchantReference": payment.id, **data})).encode()

    assert_error(post(client, "simulator", body, simulator_headers(body)), 400, "INVALID_NOTIFICATION")

    assert_no_notification_stored()
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def test_a_signed_delivery_that_holds_no_notification_matched_nothing(gateways, client):
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})

    response = post(client, "stripe", body, {"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET)})

    assert response.json() == {"received": True, "matched": False, "duplicate": False}
    assert_no_notification_stored()


def test_signed_simulator_notice_with_nul_leaves_its_payment_alone(gateways, client):
    payment = PaymentFactory(status=PaymentStatus.PROCESSING, gateway="simulator")
    body = json.dumps(simulator_event(merchantReference=payment.id, reference="sim_\x00")).encode()

    assert_error(post(client, "simulator", body, simulator_headers(body)), 400, "INVALID_NOTIFICATION")

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        stripe_event("payment_intent.succeeded", intent(id="pi_\x00")),
        stripe_event("payment_intent.succeeded", intent(metadata={"pgi_payment_id": "pay_\x00"})),
        stripe_event("payment_intent.succeeded", intent(amount=10**40, amount_received=10**40)),
        # A third-party emulator's PaymentIntent without amount_received: verified, not readable.
        stripe_event("payment_intent.succeeded", {k: v for k, v in intent().items() if k != "amount_received"}),
        stripe_event("payment_intent.succeeded", intent(currency=["usd"])),
    ],
    ids=["nested", "nul-reference", "nul-payment-id", "huge-amount", "no-amount-received", "list-currency"],
)
def test_signed_but_malformed_stripe_body_is_400_invalid_notification(gateways, client, body):
    response = post(client, "stripe", body, {"Stripe-Signature": sign_webhook(body)})

    assert_error(response, 400, "INVALID_NOTIFICATION")
    assert_no_notification_stored()


@pytest.mark.parametrize(
    "header", [f"t={'9' * 400},v1=abc", "t=NOW,v1=ünïcödé", "t=1,v1=" + "0" * 64, "garbage"]
)
def test_malformed_stripe_signature_header_is_400_invalid_signature(gateways, client, header):
    header = header.replace("NOW", str(int(time.time())))  # at run time: ids must match across xdist workers
    body = stripe_event("payment_intent.succeeded", intent())

    assert_error(post(client, "stripe", body, {"Stripe-Signature": header}), 400, "INVALID_SIGNATURE")


@pytest.mark.parametrize(
    "item",
    [
        adyen_item(psp_reference="PSP\x00"),
        adyen_item(merchant_reference="pay_\x00"),
        adyen_item(reason="\x00", success=False),
        adyen_item(value=10**40),
        adyen_item(currency="E\x00R"),
    ],
    ids=["nul-reference", "nul-payment-id", "nul-reason", "huge-amount", "nul-currency"],
)
def test_signed_but_malformed_adyen_item_is_400_invalid_notification(gateways, client, item):
    assert_error(post(client, "adyen", notification_body([item])), 400, "INVALID_NOTIFICATION")
    assert_no_notification_stored()


def test_adyen_body_that_cannot_be_read_cannot_be_verified(gateways, client):
    for body in (b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b'{"notificationItems": [{"NotificationRequestItem": 1}]}'):
        assert_error(post(client, "adyen", body), 400, "INVALID_SIGNATURE")


def test_adyen_batch_with_one_unreadable_item_stores_none_of_them(gateways, client):
    good, bad = adyen_item(psp_reference="PSP1"), adyen_item(psp_reference="PSP2", merchant_reference="pay_\x00")

    assert_error(post(client, "adyen", notification_body([good, bad])), 400, "INVALID_NOTIFICATION")

    assert_no_notification_stored()


# --- arbitrary input: never a 5xx ---------------------------------------------------------------

HEADER_TEXT = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=80)
HEADER_NAMES = st.sampled_from(
    [SIGNATURE_HEADER, "Stripe-Signature", "Authorization", "Content-Encoding", "X-Anything"]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["9e999999999999999999", "NaN", "-1", "\x00", "1e-999999999", ""]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def mutated(template: dict, path: list[str], value) -> dict:
    """`template` with the field at `path` (keys, outermost first) replaced by `value`."""
    body = copy.deepcopy(template)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.fixture
def open_payments(gateways):
    """One open payment per gateway, named by the signed templates below, so that fuzzed notices
    reach the payment service too."""
    return {code: PaymentFactory(status=PaymentStatus.PROCESSING, gateway=code, gateway_reference="") for code in
            ("simulator", "stripe", "adyen")}


def reopen(payment) -> None:
    """Back to Processing with no reference and no notices: each example starts from the same state."""
    GatewayNotification.objects.all().delete()
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.PROCESSING, gateway_reference="", needs_attention=False)
    GatewayOperation.objects.filter(payment_id=payment.pk).exclude(kind="authorize").delete()
    GatewayOperation.objects.filter(payment_id=payment.pk).update(status="pending", finished_at=None)


def assert_answered_without_a_server_error(response):
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert set(body["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("code", ["simulator", "stripe", "adyen"])
@PROPERTY_SETTINGS
@given(body=st.binary(max_size=300), headers=st.dictionaries(HEADER_NAMES, HEADER_TEXT, max_size=3))
def test_arbitrary_unsigned_delivery_is_never_a_server_error(gateways, client, code, body, headers):
    assert_answered_without_a_server_error(post(client, code, body, headers))
    assert_no_notification_stored()


SIMULATOR_PATHS = st.sampled_from(
    [["id"], ["type"], ["data"], ["data", "reference"], ["data", "merchantReference"], ["data", "status"],
     ["data", "amount"], ["data", "currency"], ["data", "declineCode"]]
)


@PROPERTY_SETTINGS
@given(path=SIMULATOR_PATHS, value=JSON_VALUES, raw=st.binary(max_size=200))
def test_arbitrary_signed_simulator_delivery_is_never_a_server_error(open_payments, client, path, value, raw):
    payment = open_payments["simulator"]
    reopen(payment)
    template = simulator_event(merchantReference=payment.id, amount=str(payment.amount), currency=payment.currency)
    for body in (json.dumps(mutated(template, path, value)).encode(), raw):
        assert_answered_without_a_server_error(post(client, "simulator", body, simulator_headers(body)))


STRIPE_PATHS = st.sampled_from(
    [["id"], ["type"], ["data"], ["data", "object"], ["data", "object", "id"], ["data", "object", "amount"],
     ["data", "object", "amount_received"], ["data", "object", "currency"], ["data", "object", "status"],
     ["data", "object", "metadata"], ["data", "object", "capture_method"], ["data", "object", "last_payment_error"]]
)


@PROPERTY_SETTINGS
@given(
    path=STRIPE_PATHS,
    value=JSON_VALUES,
    event_type=st.sampled_from(["payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded", "x"]),
    raw=st.binary(max_size=200),
)
def test_arbitrary_signed_stripe_delivery_is_never_a_server_error(open_payments, client, path, value, event_type, raw):
    payment = open_payments["stripe"]
    reopen(payment)
    template = json.loads(stripe_event(event_type, intent(metadata={"pgi_payment_id": payment.id})))
    for body in (json.dumps(mutated(template, path, value)).encode(), raw):
        assert_answered_without_a_server_error(post(client, "stripe", body, {"Stripe-Signature": sign_webhook(body)}))


ADYEN_PATHS = st.sampled_from(
    [["pspReference"], ["originalReference"], ["merchantReference"], ["eventCode"], ["success"], ["reason"],
     ["amount"], ["amount", "value"], ["amount", "currency"], ["additionalData"], ["eventDate"]]
)


@PROPERTY_SETTINGS
@given(
    path=ADYEN_PATHS,
    value=JSON_VALUES,
    event_code=st.sampled_from(["AUTHORISATION", "CAPTURE", "CANCELLATION", "CANCEL_OR_REFUND", "REFUND", "X"]),
)
def test_arbitrary_signed_adyen_delivery_is_never_a_server_error(open_payments, client, path, value, event_code):
    payment = open_payments["adyen"]
    reopen(payment)
    template = {**adyen_item(merchant_reference=payment.id, currency="EUR", value=1000), "eventCode": event_code}
    item = mutated(template, path, value)
    try:
        signed = sign_item(item)  # the signature of what was sent, as far as it can be computed
    except (KeyError, TypeError, AttributeError):
        signed = item
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": signed}]}).encode()
    assert_answered_without_a_server_error(post(client, "adyen", body))
