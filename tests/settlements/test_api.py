"""GET /v1/settlements, /v1/settlements/{id} and its lines; settlementId on payments and refunds."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pgi.merchants.services import api_key_create
from settlements.models import SettlementBatch
from settlements.services import settlement_run
from tests.conftest import client_for
from tests.factories import MerchantFactory, captured_payment, completed_refund

from ..api.helpers import assert_error

pytestmark = pytest.mark.django_db

CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
BEFORE = CUTOFF - dt.timedelta(hours=1)


@pytest.fixture
def settled(merchant, other_merchant):
    # A BIC: the JPY batch goes outside SEPA, where the payee's bank is named by its BIC.
    merchant.settlement_iban, merchant.settlement_bic = "DE89370400440532013000", "COBADEFFXXX"
    merchant.save()
    payment = captured_payment(merchant=merchant, amount="100.00", currency="EUR", captured_at=BEFORE)
    refund = completed_refund(payment=payment, amount="40.00", completed_at=BEFORE)
    captured_payment(merchant=merchant, amount="1500", currency="JPY", captured_at=BEFORE)
    captured_payment(merchant=other_merchant, amount="9.00", captured_at=BEFORE)
    settlement_run(cutoff=CUTOFF)
    return {"payment": payment, "refund": refund, "eur": SettlementBatch.objects.get(merchant=merchant, currency="EUR")}


def test_a_merchant_lists_its_own_settlements_only(api, settled):
    response = api.get("/v1/settlements")

    assert response.status_code == 200, response.content
    assert sorted((s["currency"], s["merchant"]) for s in response.json()["results"]) == [
        ("EUR", "merchant456"), ("JPY", "merchant456"),
    ]


def test_the_list_filters_by_currency_and_payout_status(api, settled):
    eur = api.get("/v1/settlements", {"currency": "EUR", "payoutStatus": "pending"}).json()["results"]
    held = api.get("/v1/settlements", {"payoutStatus": "held"}).json()["results"]

    assert [s["id"] for s in eur] == [settled["eur"].id]
    assert held == []


@pytest.mark.parametrize(
    "params, field",
    [({"currency": "XYZ"}, "currency"), ({"payoutStatus": "paid"}, "payoutStatus"), ({"sort": "id"}, "sort"),
     ({"merchant": "merchant789"}, "merchant"), ({"currency": ""}, "currency")],
)
def test_the_list_refuses_query_parameters_it_does_not_take(api, settled, params, field):
    assert_error(api.get("/v1/settlements", params), 400, "VALIDATION_ERROR", field)


def test_a_cutoff_window_that_ends_before_it_starts_is_refused(api, settled):
    window = {"cutoffFrom": "2026-12-02T00:00:00Z", "cutoffTo": "2026-12-01T00:00:00Z"}
    assert_error(api.get("/v1/settlements", window), 400, "VALIDATION_ERROR", "cutoffTo")

    around = {"cutoffFrom": (CUTOFF - dt.timedelta(seconds=1)).isoformat(), "cutoffTo": (CUTOFF + dt.timedelta(seconds=1)).isoformat()}
    response = api.get("/v1/settlements", around)
    assert response.status_code == 200 and len(response.json()["results"]) == 2


def test_a_settlement_has_its_totals_and_payout_status(api, settled):
    batch = settled["eur"]

    body = api.get(f"/v1/settlements/{batch.id}").json()

    assert body["id"] == batch.id and body["payoutStatus"] == "pending" and body["payoutStatusReason"] is None
    assert (body["grossAmount"], body["refundAmount"], body["feeAmount"], body["netAmount"]) == (100.00, 40.00, 0, 60.00)
    assert api.get(f"/v1/settlements/{batch.id}").content.count(b'"netAmount":60.00') == 1


def test_the_lines_add_up_to_the_totals_page_by_page(api, settled):
    batch = settled["eur"]
    lines, url = [], f"/v1/settlements/{batch.id}/lines?limit=1"
    while url:
        page = api.get(url)
        assert page.status_code == 200, page.content
        lines.extend(page.json()["results"])
        url = page.json()["next"]

    assert [(line["kind"], line["paymentId"], line["refundId"]) for line in lines] == [
        ("payment", settled["payment"].id, None), ("refund", settled["payment"].id, settled["refund"].id),
    ]
    assert sum(Decimal(str(line["net"])) for line in lines) == batch.net_amount


def test_another_merchants_settlement_is_not_found(api, other_merchant, settled):
    theirs = SettlementBatch.objects.get(merchant=other_merchant)

    assert_error(api.get(f"/v1/settlements/{theirs.id}"), 404, "SETTLEMENT_NOT_FOUND")
    assert_error(api.get(f"/v1/settlements/{theirs.id}/lines"), 404, "SETTLEMENT_NOT_FOUND")
    assert_error(api.get("/v1/settlements/stl_nope"), 404, "SETTLEMENT_NOT_FOUND")


def test_a_platform_key_sees_every_merchants_settlements(platform_api, settled):
    assert len(platform_api.get("/v1/settlements").json()["results"]) == 3


def test_settled_payments_and_refunds_name_their_settlement(api, settled, merchant):
    unsettled = captured_payment(merchant=merchant, amount="1.00", currency="EUR", captured_at=timezone.now())
    batch = settled["eur"]

    payments = {p["id"]: p["settlementId"] for p in api.get("/v1/payments").json()["results"]}
    refund = api.get(f"/v1/refunds/{settled['refund'].id}").json()

    assert payments[settled["payment"].id] == batch.id and payments[unsettled.id] is None
    assert api.get(f"/v1/payments/{settled['payment'].id}").json()["settlementId"] == batch.id
    assert refund["settlementId"] == batch.id


def test_the_settlement_id_adds_no_query_to_a_page_of_payments(api, settled, merchant):
    for _ in range(5):
        captured_payment(merchant=merchant, amount="1.00", currency="EUR", captured_at=BEFORE)
    settlement_run(cutoff=timezone.now() - dt.timedelta(seconds=1))
    api.get("/v1/payments")  # the key's first use writes last_used_at

    with CaptureQueriesContext(connection) as queries:
        response = api.get("/v1/payments")

    assert response.status_code == 200
    selects = [q["sql"] for q in queries.captured_queries if "payments_payment" in q["sql"]]
    assert len(selects) == 1 and "settlements_settlementline" in selects[0]


def test_a_key_of_another_merchant_gets_its_own_empty_list(settled):
    lonely = MerchantFactory(code="lonely")
    client = client_for(api_key_create(name="x", merchant=lonely, scopes=["settlements:read"])[1])

    assert client.get("/v1/settlements").json()["results"] == []


@pytest.mark.parametrize("cursor", ["%%%", "garbage", "!!", "cD0x%"])
def test_a_lines_cursor_that_is_not_one_of_ours_is_a_400(api, settled, cursor):
    response = api.get(f"/v1/settlements/{settled['eur'].id}/lines", {"cursor": cursor})

    assert response.status_code == 400 and response.json()["error"]["details"][0]["field"] == "cursor"
