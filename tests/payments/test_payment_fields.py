"""The payment's fields as docs/01-integration-guide.md describes them through its life."""

import pytest

from ..api.helpers import PAYMENTS_URL, payment_body, post_json

pytestmark = pytest.mark.django_db


def created(api, **overrides) -> dict:
    response = post_json(api, PAYMENTS_URL, payment_body(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def test_a_payment_charged_at_once_has_no_authorization_expiry(api):
    payment = created(api)

    assert (payment["status"], payment["authorizationExpiresAt"]) == ("Completed", None)


@pytest.mark.parametrize(("operation", "status"), [("capture", "Completed"), ("cancel", "Cancelled")])
def test_the_authorization_expiry_is_kept_after_a_capture_or_a_cancel(api, operation, status):
    authorized = created(api, capture=False)
    assert authorized["authorizationExpiresAt"] is not None

    response = post_json(api, f"{PAYMENTS_URL}/{authorized['id']}/{operation}", {})

    assert response.status_code == 200, response.content
    after = response.json()
    assert after["status"] == status
    assert after["authorizationExpiresAt"] == authorized["authorizationExpiresAt"]
    assert api.get(f"{PAYMENTS_URL}/{authorized['id']}").json()["authorizationExpiresAt"] == after[
        "authorizationExpiresAt"
    ]
