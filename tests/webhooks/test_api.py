"""The webhooks API: a merchant registers, reads, changes, rotates and deletes its own endpoints,
lists their deliveries and asks for redeliveries; another merchant's ids are 404; inputs are strict."""

import pytest

from pgi.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from pgi.webhooks.services import deliveries_fan_out, deliveries_send_due
from tests.api.helpers import assert_error, post_json
from tests.conftest import client_for
from tests.events.conftest import processed

pytestmark = pytest.mark.django_db

ENDPOINTS = "/v1/webhook-endpoints"


def patch_json(client, path, data):
    import simplejson

    return client.patch(path, data=simplejson.dumps(data), content_type="application/json")


@pytest.fixture
def registered(api, receiver):
    response = post_json(api, ENDPOINTS, {"url": receiver.url, "eventTypes": ["PAYMENT_PROCESSED"], "description": "orders"})
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def other_api(other_merchant):
    from pgi.merchants.services import api_key_create

    return client_for(api_key_create(name="theirs", merchant=other_merchant)[1])


def test_registering_returns_the_secret_once(api, registered, receiver):
    assert registered["secret"].startswith("whsec_")
    assert registered["id"].startswith("we_")
    assert (registered["merchant"], registered["url"], registered["eventTypes"], registered["enabled"]) == (
        "merchant456", receiver.url, ["PAYMENT_PROCESSED"], True
    )
    assert WebhookEndpoint.objects.get(pk=registered["id"]).secret == registered["secret"]

    detail = api.get(f"{ENDPOINTS}/{registered['id']}")
    listed = api.get(ENDPOINTS)

    assert detail.status_code == 200 and "secret" not in detail.json()
    assert [item["id"] for item in listed.json()["results"]] == [registered["id"]]
    assert "secret" not in listed.json()["results"][0]


def test_no_delivery_is_sent_in_a_payment_request(api, registered, receiver):
    from tests.api.helpers import PAYMENTS_URL, payment_body

    response = post_json(api, PAYMENTS_URL, payment_body())
    assert response.status_code == 201

    assert receiver.received == [] and not WebhookDelivery.objects.exists()
    deliveries_fan_out()
    deliveries_send_due()
    assert [got.headers["PGI-Event-Type"] for got in receiver.received] == ["PAYMENT_PROCESSED"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://x", "eventTypes": ["*"], "colour": "red"}, "colour"),
        ({"url": "http://x", "eventTypes": ["*"], "secret": "mine"}, "secret"),
        ({"url": 5, "eventTypes": ["*"]}, "url"),
        ({"url": "ftp://example.com/", "eventTypes": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": "PAYMENT_CREATED"}, "eventTypes"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": []}, "eventTypes"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": ["PAYMENT_EXPLODED"]}, "eventTypes"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": ["*", "PAYMENT_CREATED"]}, "eventTypes"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": ["*"], "enabled": "yes"}, "enabled"),
        ({"eventTypes": ["*"]}, "url"),
        ({"url": " http://127.0.0.1:8000/", "eventTypes": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:8000/\n", "eventTypes": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:8000/", "eventTypes": ["*"], "description": 5}, "description"),
    ],
)
def test_invalid_bodies_are_refused_in_the_error_format(api, allow_private, body, field):
    assert_error(post_json(api, ENDPOINTS, body), 400, "VALIDATION_ERROR", field=field)
    assert not WebhookEndpoint.objects.exists()


def test_a_private_url_is_refused_in_production_settings(api, refuse_private):
    response = post_json(api, ENDPOINTS, {"url": "http://169.254.169.254/latest", "eventTypes": ["*"]})

    assert_error(response, 400, "VALIDATION_ERROR", field="url")


def test_another_merchants_endpoints_and_deliveries_are_404(principal, registered, other_api):
    endpoint_id = registered["id"]
    processed(principal)
    deliveries_fan_out()
    delivery_id = WebhookDelivery.objects.get().id

    for response in [
        other_api.get(f"{ENDPOINTS}/{endpoint_id}"),
        patch_json(other_api, f"{ENDPOINTS}/{endpoint_id}", {"enabled": False}),
        other_api.delete(f"{ENDPOINTS}/{endpoint_id}"),
        other_api.post(f"{ENDPOINTS}/{endpoint_id}/rotate-secret"),
        other_api.get(f"{ENDPOINTS}/{endpoint_id}/deliveries"),
    ]:
        assert_error(response, 404, "WEBHOOK_ENDPOINT_NOT_FOUND")
    for response in [
        other_api.get(f"/v1/webhook-deliveries/{delivery_id}"),
        other_api.post(f"/v1/webhook-deliveries/{delivery_id}/redeliver"),
    ]:
        assert_error(response, 404, "WEBHOOK_DELIVERY_NOT_FOUND")
    assert other_api.get(ENDPOINTS).json()["results"] == []
    assert WebhookEndpoint.objects.get(pk=endpoint_id).enabled


def test_a_merchant_key_cannot_register_for_another_merchant(api, other_merchant, receiver):
    response = post_json(api, ENDPOINTS, {"url": receiver.url, "eventTypes": ["*"], "merchant": other_merchant.code})

    assert_error(response, 403, "MERCHANT_NOT_ALLOWED", field="merchant")


def test_a_platform_key_names_the_merchant_and_sees_every_merchants_endpoints(platform_api, merchant, receiver, registered):
    missing = post_json(platform_api, ENDPOINTS, {"url": receiver.url, "eventTypes": ["*"]})
    assert_error(missing, 400, "VALIDATION_ERROR", field="merchant")

    created = post_json(platform_api, ENDPOINTS, {"url": receiver.url, "eventTypes": ["*"], "merchant": "merchant456"})

    assert created.status_code == 201 and created.json()["merchant"] == "merchant456"
    assert {item["id"] for item in platform_api.get(ENDPOINTS).json()["results"]} == {registered["id"], created.json()["id"]}


def test_patch_changes_what_is_given_and_checks_a_new_url(api, registered, refuse_private):
    url = f"{ENDPOINTS}/{registered['id']}"

    changed = patch_json(api, url, {"enabled": False, "eventTypes": ["*"]})
    refused = patch_json(api, url, {"url": "http://10.0.0.1/hooks"})
    unknown = patch_json(api, url, {"secret": "mine"})

    assert changed.status_code == 200, changed.content
    assert (changed.json()["enabled"], changed.json()["eventTypes"], changed.json()["url"]) == (
        False, ["*"], registered["url"]
    )
    assert_error(refused, 400, "VALIDATION_ERROR", field="url")
    assert_error(unknown, 400, "VALIDATION_ERROR", field="secret")


def test_rotating_returns_a_new_secret_and_keeps_the_old_one_signing_for_a_while(api, registered):
    response = api.post(f"{ENDPOINTS}/{registered['id']}/rotate-secret")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != registered["secret"]
    assert body["previousSecretExpiresAt"] is not None
    endpoint = WebhookEndpoint.objects.get(pk=registered["id"])
    assert (endpoint.secret, endpoint.previous_secret) == (body["secret"], registered["secret"])


def test_deleting_an_endpoint_stops_its_deliveries(api, principal, registered):
    processed(principal)
    deliveries_fan_out()

    response = api.delete(f"{ENDPOINTS}/{registered['id']}")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert_error(api.get(f"{ENDPOINTS}/{registered['id']}"), 404, "WEBHOOK_ENDPOINT_NOT_FOUND")


def test_deliveries_are_listed_filtered_and_read_with_their_attempts(api, principal, registered, receiver):
    receiver.answers.append((500, b"later"))
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    delivery = WebhookDelivery.objects.get()

    listed = api.get(f"{ENDPOINTS}/{registered['id']}/deliveries", {"status": "pending"})
    none_failed = api.get(f"{ENDPOINTS}/{registered['id']}/deliveries", {"status": "failed"})
    detail = api.get(f"/v1/webhook-deliveries/{delivery.id}")

    assert [item["id"] for item in listed.json()["results"]] == [delivery.id]
    assert none_failed.json()["results"] == []
    body = detail.json()
    assert (body["status"], body["attemptCount"], body["lastResponseStatus"], body["eventType"]) == (
        "pending", 1, 500, "PAYMENT_PROCESSED"
    )
    assert body["body"] == delivery.body
    assert [(a["number"], a["responseStatus"], a["responseBody"], a["succeeded"]) for a in body["attempts"]] == [
        (1, 500, "later", False)
    ]
    assert_error(api.get(f"{ENDPOINTS}/{registered['id']}/deliveries", {"status": "lost"}), 400, "VALIDATION_ERROR")
    assert_error(api.get(f"{ENDPOINTS}/{registered['id']}/deliveries", {"colour": "x"}), 400, "VALIDATION_ERROR")


def test_redelivery_schedules_an_attempt_that_a_worker_sends(api, principal, registered, receiver):
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED

    response = post_json(api, f"/v1/webhook-deliveries/{delivery.id}/redeliver", {}, **{"Idempotency-Key": "again-1"})
    replay = post_json(api, f"/v1/webhook-deliveries/{delivery.id}/redeliver", {}, **{"Idempotency-Key": "again-1"})

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and len(receiver.received) == 1  # not sent in the request
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert deliveries_send_due() == 1
    detail = api.get(f"/v1/webhook-deliveries/{delivery.id}").json()
    assert detail["status"] == "succeeded" and [a["trigger"] for a in detail["attempts"]] == ["scheduled", "redelivery"]
    assert detail["attempts"][1]["requestedBy"] == "api:checkout"


def test_redelivery_to_a_disabled_endpoint_is_refused(api, principal, registered):
    processed(principal)
    deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    patch_json(api, f"{ENDPOINTS}/{registered['id']}", {"enabled": False})

    response = api.post(f"/v1/webhook-deliveries/{delivery.id}/redeliver")

    assert_error(response, 422, "WEBHOOK_ENDPOINT_DISABLED")


def test_ids_no_row_can_have_are_404(api):
    assert_error(api.get(f"{ENDPOINTS}/nope"), 404, "WEBHOOK_ENDPOINT_NOT_FOUND")
    assert_error(api.get("/v1/webhook-deliveries/wd_x"), 404, "WEBHOOK_DELIVERY_NOT_FOUND")


def test_a_null_description_means_none_on_create_and_clears_it_on_patch(api, registered, receiver):
    created = post_json(api, ENDPOINTS, {"url": receiver.url, "eventTypes": ["*"], "description": None})
    assert created.status_code == 201 and created.json()["description"] is None

    cleared = patch_json(api, f"{ENDPOINTS}/{registered['id']}", {"description": None})
    assert cleared.status_code == 200 and cleared.json()["description"] is None
    assert WebhookEndpoint.objects.get(pk=registered["id"]).description == ""
    untouched = patch_json(api, f"{ENDPOINTS}/{created.json()['id']}", {"enabled": False})
    assert untouched.json()["description"] is None and untouched.json()["enabled"] is False
