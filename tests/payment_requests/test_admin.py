"""Engineers find the payment a request id created, read-only, under Engineering."""

import pytest
from django.urls import reverse

from payment_requests.messages import message_read
from payment_requests.services import Origin, payment_request_process, requester_principal

from .conftest import request_bytes

pytestmark = pytest.mark.django_db


def test_superusers_find_a_request_by_its_id_and_cannot_change_it(admin_client, bank_merchant):
    handled = payment_request_process(
        message=message_read(request_bytes(requestId="tps-7001")),
        origin=Origin(topic="payment-requests", partition=0, offset=3),
        principal=requester_principal(name="payment-requests"),
    )
    record = handled.payment.payment_request
    url = reverse("admin:payment_requests_paymentrequest_changelist")

    index = admin_client.get(reverse("admin:index"))
    engineering = next(s for s in index.context["app_list"] if s["name"] == "Engineering")
    found = admin_client.get(url, {"q": "tps-7001"})
    detail = admin_client.get(reverse("admin:payment_requests_paymentrequest_change", args=[record.pk]))

    assert url in [entry["admin_url"] for entry in engineering["models"]]
    assert [row.pk for row in found.context["cl"].result_list] == [record.pk]
    assert detail.status_code == 200
    assert not detail.context["has_change_permission"] and not detail.context["has_delete_permission"]
