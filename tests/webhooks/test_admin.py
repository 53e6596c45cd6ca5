"""Staff register and change endpoints (the secret shown once), rotate a secret, see deliveries with
their attempts, and redeliver with a permission of its own."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from pgi.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from pgi.webhooks.services import deliveries_fan_out, deliveries_send_due
from tests.events.conftest import processed

pytestmark = pytest.mark.django_db

ADD = "admin:webhooks_webhookendpoint_add"


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="webhooks", codename__in=codenames))
    return user


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(staff_with(
        django_user_model, "operator", "add_webhookendpoint", "change_webhookendpoint", "view_webhookendpoint",
        "view_webhookdelivery", "redeliver_webhookdelivery",
    ))
    return client


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(staff_with(django_user_model, "viewer", "view_webhookendpoint", "view_webhookdelivery"))
    return client


def add_form(client, merchant, url, event_types=("PAYMENT_PROCESSED",)):
    page = client.get(reverse(ADD))
    token = page.context["adminform"].form["issue_token"].initial
    data = {"merchant": merchant.pk, "url": url, "event_types": list(event_types), "description": "orders",
            "enabled": "on", "issue_token": token}
    return client.post(reverse(ADD), data)


@pytest.fixture
def delivered(principal, merchant, endpoint_for, receiver):
    endpoint, _ = endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    receiver.answers.append((500, b"down for a bit"))
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    return WebhookDelivery.objects.get()


def test_staff_register_an_endpoint_and_see_its_secret_once(operator, merchant, receiver):
    response = add_form(operator, merchant, receiver.url)

    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert endpoint.secret in response.content.decode()
    assert endpoint.event_types == ["PAYMENT_PROCESSED"] and endpoint.merchant == merchant

    page = operator.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()
    assert "Rotate the secret" in page.content.decode()


def test_reposting_the_add_form_registers_no_second_endpoint(operator, merchant, receiver):
    page = operator.get(reverse(ADD))
    token = page.context["adminform"].form["issue_token"].initial
    data = {"merchant": merchant.pk, "url": receiver.url, "event_types": ["*"], "enabled": "on", "issue_token": token}

    operator.post(reverse(ADD), data)
    again = operator.post(reverse(ADD), data)

    assert again.status_code == 200 and "already registered" in again.content.decode()
    assert WebhookEndpoint.objects.count() == 1


def test_a_private_url_is_refused_on_the_form(operator, merchant, refuse_private):
    response = add_form(operator, merchant, "http://10.0.0.1/hooks")

    assert response.status_code == 200 and "non-public" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotating_shows_the_new_secret_once(operator, merchant, endpoint_for):
    endpoint, old = endpoint_for(merchant)

    response = operator.post(reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk]))

    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.secret in response.content.decode() and old not in response.content.decode()


def test_viewers_cannot_rotate(viewer, merchant, endpoint_for):
    endpoint, old = endpoint_for(merchant)

    response = viewer.post(reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk]))

    assert response.status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.secret == old


def test_a_delivery_page_shows_its_attempts_and_staff_may_redeliver(operator, delivered):
    page = operator.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivered.pk]))

    assert page.status_code == 200
    assert "down for a bit" in page.content.decode() and 'id="webhook-redeliver"' in page.content.decode()
    response = operator.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivered.pk]), follow=True)
    assert any("Redelivery asked for 1" in str(m) for m in get_messages(response.wsgi_request))
    assert deliveries_send_due() == 1
    delivered.refresh_from_db()
    assert delivered.status == DeliveryStatus.SUCCEEDED
    assert delivered.attempt_rows.last().requested_by == "staff:operator"


def test_the_list_action_redelivers(operator, delivered):
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    operator.post(changelist, {"action": "redeliver", "_selected_action": [delivered.pk]})

    delivered.refresh_from_db()
    assert delivered.redelivery_requested_by == "staff:operator"


def test_staff_without_the_permission_see_no_button_and_cannot_redeliver(viewer, delivered):
    page = viewer.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivered.pk]))
    response = viewer.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivered.pk]))

    assert page.status_code == 200 and 'id="webhook-redeliver"' not in page.content.decode()
    assert response.status_code == 403
    delivered.refresh_from_db()
    assert delivered.redelivery_requested_by == ""


def test_deliveries_are_found_by_exact_ids_and_filtered_by_status(viewer, delivered):
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")

    def found(**params):
        return list(viewer.get(changelist, params).context["cl"].result_list)

    assert found(q=delivered.pk) == [delivered]
    assert found(q=delivered.endpoint_id) == [delivered]
    assert found(q=str(delivered.event_id)) == [delivered]
    assert found(q="not-an-id") == []
    assert found(status__exact="failed") == []


def test_webhooks_are_listed_under_merchants(admin_client):
    sections = admin_client.get(reverse("admin:index")).context["app_list"]
    merchants = next(section for section in sections if section["app_label"] == "merchants")

    assert {"Webhook endpoints", "Webhook deliveries"} <= {entry["name"] for entry in merchants["models"]}


def test_an_endpoints_page_links_to_its_deliveries_and_the_lists_render(viewer, delivered):
    endpoint = delivered.endpoint
    page = viewer.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    link = reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}"

    assert link in page and endpoint.secret not in page
    listed = viewer.get(link)
    assert listed.status_code == 200 and list(listed.context["cl"].result_list) == [delivered]
    endpoints = viewer.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert endpoints.status_code == 200 and endpoint.secret not in endpoints.content.decode()
