"""The refunds API against the real database and the simulator: POST /v1/payments/{id}/refunds,
GET /v1/payments/{id}/refunds, GET /v1/refunds and GET /v1/refunds/{id}. The send runs after the
commit, which the test database never makes: the tests send with refunds_process, as the batch job
does."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from pgi.api.models import IdempotencyRecord
from pgi.merchants.services import api_key_create
from refunds.models import Refund, RefundStatus
from refunds.services import refunds_process

from ..api.helpers import PAYMENTS_URL, assert_error, loads, payment_body, post_json
from ..conftest import client_for

pytestmark = pytest.mark.django_db

REFUNDS_URL = "/v1/refunds"
REFUND_FIELDS = {
    "id", "paymentId", "amount", "currency", "status", "reason", "metadata", "gateway", "gatewayReference",
    "failureCode", "failureMessage", "timestamp", "settlementId", "createdAt", "updatedAt",
}


def paid(api, amount: str = "100.00", **overrides) -> str:
    """A payment charged at once through the API (so the simulator holds its charge); its id."""
    response = post_json(api, PAYMENTS_URL, payment_body(amount=Decimal(amount), toMerchant=..., **overrides))
    assert response.status_code == 201, response.content
    assert response.json()["status"] in ("Completed", "Authorized"), response.content
    return response.json()["id"]


def refunds_url(payment_id: str) -> str:
    return f"{PAYMENTS_URL}/{payment_id}/refunds"


def refund(api, payment_id: str, body=None, **headers):
    return post_json(api, refunds_url(payment_id), {} if body is None else body, **headers)


def accepted(response) -> dict:
    assert response.status_code == 202, response.content
    return loads(response.content)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


@pytest.fixture
def other_api(other_merchant):
    return client_for(api_key_create(name="other", merchant=other_merchant)[1])


def test_a_partial_refund_is_accepted_pending_then_completed_and_shown_on_the_payment(api):
    payment_id = paid(api)

    response = refund(api, payment_id, {"amount": Decimal(30), "reason": "Returned item", "metadata": {"rma": "77"}})

    body = accepted(response)
    assert set(body) == REFUND_FIELDS
    assert (body["paymentId"], body["status"], body["currency"], body["reason"]) == (
        payment_id, "Pending", "USD", "Returned item"
    )
    assert body["metadata"] == {"rma": "77"}
    assert b'"amount":30.00' in response.content  # the currency's digits, an exact JSON number
    assert body["id"].startswith("ref_") and body["gateway"] == "simulator"
    assert (body["gatewayReference"], body["failureCode"], body["failureMessage"]) == (None, None, None)
    assert response.headers["Location"] == f"http://testserver/v1/refunds/{body['id']}"

    assert refunds_process()["completed"] == 1

    done = loads(api.get(f"{REFUNDS_URL}/{body['id']}").content)
    assert (done["status"], done["amount"]) == ("Completed", Decimal("30.00"))
    assert done["gatewayReference"] and done["timestamp"] >= body["timestamp"]
    payment = loads(api.get(f"{PAYMENTS_URL}/{payment_id}").content)
    assert (payment["status"], payment["refundedAmount"]) == ("PartiallyRefunded", Decimal("30.00"))


def test_without_an_amount_all_that_remains_is_refunded_and_the_payment_is_refunded(api):
    payment_id = paid(api)
    accepted(refund(api, payment_id, {"amount": Decimal("30.00")}))
    refunds_process()

    rest = accepted(refund(api, payment_id))  # no amount: the 70.00 that remain
    assert rest["amount"] == Decimal("70.00") and rest["reason"] is None and rest["metadata"] == {}
    assert refunds_process()["completed"] == 1

    payment = loads(api.get(f"{PAYMENTS_URL}/{payment_id}").content)
    assert (payment["status"], payment["refundedAmount"]) == ("Refunded", Decimal("100.00"))
    assert_error(refund(api, payment_id), 422, "PAYMENT_NOT_REFUNDABLE")  # Refunded: nothing is left


def test_a_full_refund_in_one_step_refunds_the_payment(api):
    payment_id = paid(api, "50.00")

    whole = accepted(refund(api, payment_id, {"amount": Decimal("50.00")}))
    refunds_process()

    assert loads(api.get(f"{REFUNDS_URL}/{whole['id']}").content)["status"] == "Completed"
    payment = api.get(f"{PAYMENTS_URL}/{payment_id}").json()
    assert payment["status"] == "Refunded"


def test_a_refund_in_flight_counts_against_what_remains(api):
    payment_id = paid(api)
    accepted(refund(api, payment_id, {"amount": Decimal("60.00")}))  # Pending: not sent yet

    error = assert_error(refund(api, payment_id, {"amount": Decimal("40.01")}), 422, "REFUND_EXCEEDS_AVAILABLE")
    assert error["details"] == [{"field": "amount", "message": "At most 40.00 USD."}]
    assert accepted(refund(api, payment_id, {"amount": Decimal("40.00")}))["amount"] == Decimal("40.00")


def test_a_payment_not_captured_is_not_refundable(api):
    authorized = paid(api, capture=False)

    assert_error(refund(api, authorized), 422, "PAYMENT_NOT_REFUNDABLE")
    assert not Refund.objects.exists()


def test_more_decimals_than_the_currency_has_are_refused(api):
    payment_id = paid(api)

    assert_error(refund(api, payment_id, {"amount": Decimal("10.001")}), 400, "VALIDATION_ERROR", field="amount")
    yen = paid(api, "500", currency="JPY")
    assert_error(refund(api, yen, {"amount": Decimal("1.5")}), 400, "VALIDATION_ERROR", field="amount")
    assert b'"amount":100' in refund(api, yen, {"amount": Decimal(100)}).content


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"amount": "10.00"}, "amount", "Must be a JSON number."),
        ({"amount": Decimal(0)}, "amount", "Must be greater than zero."),
        ({"amount": Decimal(-5)}, "amount", "Must be greater than zero."),
        ({"reason": 12}, "reason", "Must be a JSON string."),
        ({"reason": "x" * 256}, "reason", None),
        ({"metadata": {"a": 1}}, "metadata.a", "Must be a JSON string."),
        ({"metadata": "x"}, "metadata", None),
        ({"colour": "blue"}, "colour", "Unknown field."),
        ({"status": "Completed"}, "status", "This field is read-only."),
    ],
)
def test_a_bad_body_is_refused_field_by_field(api, body, field, message):
    payment_id = paid(api)

    error = assert_error(refund(api, payment_id, body), 400, "VALIDATION_ERROR", field=field)

    if message is not None:
        assert {"field": field, "message": message} in error["details"]
    assert not Refund.objects.exists()


@pytest.mark.parametrize(("text", "code"), [("[]", "VALIDATION_ERROR"), ("null", "VALIDATION_ERROR"),
                                            ('{"amount": 1, "amount": 2}', "MALFORMED_JSON"), ("{", "MALFORMED_JSON")])
def test_a_body_that_is_not_a_json_object_is_refused(api, text, code):
    payment_id = paid(api)

    assert_error(refund(api, payment_id, text), 400, code)


def test_another_merchants_payment_and_refund_are_not_found(api, other_api):
    theirs = paid(other_api)
    their_refund = accepted(refund(other_api, theirs, {"amount": Decimal("5.00")}))

    assert_error(refund(api, theirs), 404, "PAYMENT_NOT_FOUND")
    assert_error(api.get(refunds_url(theirs)), 404, "PAYMENT_NOT_FOUND")
    assert_error(api.get(f"{REFUNDS_URL}/{their_refund['id']}"), 404, "REFUND_NOT_FOUND")
    assert ids(api.get(REFUNDS_URL)) == []
    assert Refund.objects.count() == 1


@pytest.mark.parametrize("refund_id", ["ref_x", "REF_" + "0" * 26, "pay_" + "0" * 26, "ref_" + "0" * 26, "x" * 300])
def test_an_unknown_or_impossible_refund_id_is_not_found(api, refund_id):
    assert_error(api.get(f"{REFUNDS_URL}/{refund_id}"), 404, "REFUND_NOT_FOUND")


def test_an_impossible_payment_id_is_not_found_before_an_idempotency_key_is_stored(api):
    response = refund(api, "pay_" + "x" * 240, **{"Idempotency-Key": "k1"})

    assert_error(response, 404, "PAYMENT_NOT_FOUND")
    assert not IdempotencyRecord.objects.exists()


def test_a_retry_with_the_same_key_is_replayed_and_refunds_once(api):
    payment_id = paid(api)
    first = refund(api, payment_id, {"amount": Decimal("30.00"), "reason": ""}, **{"Idempotency-Key": "rf-1"})

    # The same meaning spelled otherwise: 30 for 30.00, the default reason left out.
    again = refund(api, payment_id, {"amount": Decimal(30), "metadata": {}}, **{"Idempotency-Key": "rf-1"})

    assert accepted(again) == accepted(first)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert Refund.objects.count() == 1


def test_a_key_used_with_another_body_or_payment_is_refused(api):
    payment_id, other_payment = paid(api), paid(api)
    accepted(refund(api, payment_id, {"amount": Decimal("30.00")}, **{"Idempotency-Key": "rf-2"}))

    assert_error(refund(api, payment_id, {"amount": Decimal("31.00")}, **{"Idempotency-Key": "rf-2"}), 422,
                 "IDEMPOTENCY_KEY_REUSED", field="Idempotency-Key")
    assert_error(refund(api, payment_id, **{"Idempotency-Key": "rf-2"}), 422, "IDEMPOTENCY_KEY_REUSED")
    assert_error(refund(api, other_payment, {"amount": Decimal("30.00")}, **{"Idempotency-Key": "rf-2"}), 422,
                 "IDEMPOTENCY_KEY_REUSED")
    assert Refund.objects.count() == 1


def test_a_retry_after_a_crash_gets_the_refund_as_it_is_now(api):
    payment_id = paid(api)
    first = accepted(refund(api, payment_id, {"amount": Decimal("30.00")}, **{"Idempotency-Key": "rf-3"}))
    # As if the first request died after its commit: linked to the refund, no response stored, lease lapsed.
    record = IdempotencyRecord.objects.get(key="rf-3")
    assert record.linked_id == first["id"]
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=None, response_body="", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    refunds_process()

    retry = refund(api, payment_id, {"amount": Decimal("30.00")}, **{"Idempotency-Key": "rf-3"})

    assert retry.headers["Idempotent-Replayed"] == "true"
    body = accepted(retry)
    assert (body["id"], body["status"]) == (first["id"], "Completed")
    assert retry.headers["Location"].endswith(f"/v1/refunds/{first['id']}")
    assert IdempotencyRecord.objects.get(pk=record.pk).response_status == 202  # final: stored from now on
    assert Refund.objects.count() == 1


def test_a_payments_refunds_are_listed_newest_first_page_by_page(api):
    payment_id, other_payment = paid(api), paid(api)
    made = [accepted(refund(api, payment_id, {"amount": Decimal("10.00")}))["id"] for _ in range(3)]
    accepted(refund(api, other_payment, {"amount": Decimal("10.00")}))

    first = api.get(refunds_url(payment_id), {"limit": 2})
    assert ids(first) == made[::-1][:2]
    second = api.get(first.json()["next"])
    assert ids(second) == made[:1] and second.json()["next"] is None
    assert ids(api.get(refunds_url(other_payment))) != made
    for query in ({"status": "Pending"}, {"limit": ""}, {"limit": "0"}, {"cursor": "nope"}):
        assert_error(api.get(refunds_url(payment_id), query), 400, "VALIDATION_ERROR", field=next(iter(query)))


def test_the_refunds_list_filters_by_payment_status_currency_and_time(api):
    usd, yen = paid(api), paid(api, "500", currency="JPY")
    done = accepted(refund(api, usd, {"amount": Decimal("10.00")}))["id"]
    refunds_process()
    pending = accepted(refund(api, usd, {"amount": Decimal("20.00")}))["id"]
    in_yen = accepted(refund(api, yen, {"amount": Decimal(100)}))["id"]
    Refund.objects.filter(pk=done).update(created_at=timezone.now() - timedelta(days=2))

    assert ids(api.get(REFUNDS_URL)) == [in_yen, pending, done]
    assert ids(api.get(REFUNDS_URL, {"paymentId": usd})) == [pending, done]
    assert ids(api.get(REFUNDS_URL, {"status": "Completed"})) == [done]
    assert ids(api.get(f"{REFUNDS_URL}?status=Completed&status=Pending")) == [in_yen, pending, done]
    assert ids(api.get(REFUNDS_URL, {"currency": "JPY"})) == [in_yen]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(api.get(REFUNDS_URL, {"createdFrom": since})) == [in_yen, pending]
    assert ids(api.get(REFUNDS_URL, {"createdTo": since})) == [done]
    assert ids(api.get(REFUNDS_URL, {"merchant": "merchant456"})) == [in_yen, pending, done]

    page = api.get(REFUNDS_URL, {"limit": 1, "paymentId": usd})
    assert ids(page) == [pending]
    assert parse_qs(urlsplit(page.json()["next"]).query)["paymentId"] == [usd]  # the filters go along
    assert ids(api.get(page.json()["next"])) == [done]


@pytest.mark.parametrize(
    "query",
    [
        {"colour": "blue"},
        {"status": "Done"},
        {"status": ""},
        {"paymentId": "pay_x"},
        {"paymentId": "ref_" + "0" * 26},
        {"currency": "usd"},
        {"createdFrom": "yesterday"},
        {"merchant": "merchant789"},
        {"limit": "201"},
    ],
)
def test_a_bad_or_unknown_list_parameter_is_refused(api, query):
    assert_error(api.get(REFUNDS_URL, query), 400, "VALIDATION_ERROR", field=next(iter(query)))


def test_a_platform_key_lists_every_merchants_refunds_and_may_pick_one(api, other_api, platform_api):
    mine = accepted(refund(api, paid(api), {"amount": Decimal("5.00")}))["id"]
    theirs = accepted(refund(other_api, paid(other_api), {"amount": Decimal("5.00")}))["id"]

    assert ids(platform_api.get(REFUNDS_URL)) == [theirs, mine]
    assert ids(platform_api.get(REFUNDS_URL, {"merchant": "merchant789"})) == [theirs]
    assert platform_api.get(f"{REFUNDS_URL}/{mine}").json()["id"] == mine


def test_a_platform_key_may_refund_any_merchants_payment(api, platform_api):
    payment_id = paid(api)

    body = accepted(refund(platform_api, payment_id, {"amount": Decimal("5.00")}))

    assert Refund.objects.get(pk=body["id"]).merchant.code == "merchant456"


def test_other_methods_and_query_parameters_of_a_post_are_refused(api):
    payment_id = paid(api)

    assert api.post(REFUNDS_URL, {}, format="json").status_code == 405
    assert api.delete(refunds_url(payment_id)).status_code == 405
    assert_error(post_json(api, f"{refunds_url(payment_id)}?amount=5", {}), 400, "VALIDATION_ERROR", field="amount")
    assert_error(api.get(f"{REFUNDS_URL}/ref_{'0' * 26}?expand=payment"), 400, "VALIDATION_ERROR", field="expand")
    assert not Refund.objects.exists()


def test_a_refund_that_the_gateway_refuses_is_failed_with_its_code(api):
    payment_id = paid(api)
    body = accepted(refund(api, payment_id, {"amount": Decimal("30.00")}))
    # The simulator refuses a refund of a charge it does not hold.
    Payment.objects.filter(pk=payment_id).update(gateway_reference="sim_ch_unknown")

    refunds_process()

    failed = api.get(f"{REFUNDS_URL}/{body['id']}").json()
    assert failed["status"] == RefundStatus.FAILED and failed["failureCode"] and failed["failureMessage"]
    payment = loads(api.get(f"{PAYMENTS_URL}/{payment_id}").content)
    assert (payment["status"], payment["refundedAmount"]) == (PaymentStatus.COMPLETED, Decimal("0.00"))
    assert accepted(refund(api, payment_id))["amount"] == Decimal("100.00")  # a failed refund frees its amount


def test_the_refund_is_sent_by_the_task_queued_after_the_commit(api, django_capture_on_commit_callbacks, monkeypatch):
    from pgi.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the task runs here, as a worker would run it
    payment_id = paid(api)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        body = accepted(refund(api, payment_id, {"amount": Decimal("30.00")}))

    assert callbacks
    assert api.get(f"{REFUNDS_URL}/{body['id']}").json()["status"] == "Completed"
    assert api.get(f"{PAYMENTS_URL}/{payment_id}").json()["status"] == "PartiallyRefunded"


def test_a_post_without_a_body_refunds_all_that_remains(api):
    payment_id = paid(api, "50.00")

    response = api.generic("POST", refunds_url(payment_id))  # no body, no Content-Type

    assert accepted(response)["amount"] == Decimal("50.00")
