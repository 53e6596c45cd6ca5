"""fromAccount is whole where the merchant asked for its own payment (the answer to POST and to GET
/v1/payments/{id}) and masked to its last four characters in lists and in merchants' webhooks."""

import pytest

from pgi.events.models import OutboxEvent
from pgi.events.payloads import decimal_loads, merchant_facing_body

from ..api.helpers import PAYMENTS_URL, payment_body, post_json

pytestmark = pytest.mark.django_db

IBAN = "DE89370400440532013000"


def test_the_list_masks_every_account_and_the_payments_own_answers_show_it_whole(api):
    created = post_json(api, PAYMENTS_URL, payment_body(fromAccount=IBAN))
    post_json(api, PAYMENTS_URL, payment_body(fromAccount="abc"))
    assert created.status_code == 201 and created.json()["fromAccount"] == IBAN

    listed = api.get(PAYMENTS_URL).json()["results"]
    assert [item["fromAccount"] for item in listed] == ["****", "****3000"]
    assert IBAN not in api.get(PAYMENTS_URL).content.decode()
    assert api.get(f"{PAYMENTS_URL}/{created.json()['id']}").json()["fromAccount"] == IBAN


def test_the_list_still_filters_by_the_whole_account(api):
    post_json(api, PAYMENTS_URL, payment_body(fromAccount=IBAN))
    post_json(api, PAYMENTS_URL, payment_body(fromAccount="other-3000"))
    found = api.get(PAYMENTS_URL, {"fromAccount": IBAN}).json()["results"]
    assert [item["fromAccount"] for item in found] == ["****3000"]


def test_kafka_events_carry_the_account_whole_for_the_banks_systems_and_webhooks_masked(api):
    payment = post_json(api, PAYMENTS_URL, payment_body(fromAccount=IBAN)).json()
    rows = OutboxEvent.objects.filter(key=payment["id"])
    assert rows.exists()
    for row in rows:
        assert row.payload["details"]["fromAccount"] == IBAN
        merchant_facing = merchant_facing_body(row.body)
        assert IBAN not in merchant_facing
        assert decimal_loads(merchant_facing)["details"]["fromAccount"] == "****3000"
        assert merchant_facing.replace('"****3000"', f'"{IBAN}"') == row.body  # every other byte as published
