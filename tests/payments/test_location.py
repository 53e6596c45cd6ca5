"""A 201 names the new payment's URL in `Location`, first time and on every replay."""

import pytest

from ..api.helpers import PAYMENTS_URL, VALIDATE_URL, assert_error, payment_body, post_json

pytestmark = pytest.mark.django_db


def test_a_new_payment_answers_with_its_url_in_location(api):
    response = post_json(api, PAYMENTS_URL, payment_body())

    assert response.status_code == 201, response.content
    location = response.headers["Location"]
    assert location == f"http://testserver{PAYMENTS_URL}/{response.json()['id']}"
    assert api.get(location).json() == response.json()


def test_a_declined_payment_is_created_and_located_too(api):
    response = post_json(api, PAYMENTS_URL, payment_body(fromAccount="acct-0002"))

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "Failed"
    assert response.headers["Location"].endswith(f"/{response.json()['id']}")


def test_a_replayed_201_carries_the_same_location(api):
    first = post_json(api, PAYMENTS_URL, payment_body(), **{"Idempotency-Key": "order-7"})
    replay = post_json(api, PAYMENTS_URL, payment_body(), **{"Idempotency-Key": "order-7"})

    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]


def test_answers_that_create_nothing_carry_no_location(api):
    refused = post_json(api, PAYMENTS_URL, payment_body(amount=-1))
    validated = post_json(api, VALIDATE_URL, payment_body())

    assert_error(refused, 400, "VALIDATION_ERROR", field="amount")
    assert validated.status_code == 200
    assert "Location" not in refused.headers and "Location" not in validated.headers
