"""Each role in the admin, signed in as a personal account without superuser status: the sections
it sees, the pages it opens (200) or is refused (403), and the actions offered to it."""

import pytest
from django.urls import reverse

from .conftest import NO_ROLE

pytestmark = pytest.mark.django_db

ROLES = ["Operations", "Finance", "Support", "Security", NO_ROLE]
OPS, FIN, SUP, SEC, NONE = ROLES

SECTIONS = {
    OPS: ["Payments and refunds", "Merchants", "Gateways"],
    FIN: ["Payments and refunds", "Merchants", "Settlement and reconciliation"],
    SUP: ["Payments and refunds"],
    SEC: ["Merchants", "Staff and audit"],  # Merchants: its API keys only
    NONE: [],
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_its_sections_and_nothing_else(signed_in, role):
    response = signed_in(role).get(reverse("admin:index"))

    assert response.status_code == 200
    assert [section["name"] for section in response.context["app_list"]] == SECTIONS[role]


def test_the_merchants_section_shows_security_the_keys_and_operations_the_merchants(signed_in):
    def listed(role):
        index = signed_in(role).get(reverse("admin:index"))
        merchants = next(s for s in index.context["app_list"] if s["name"] == "Merchants")
        return {entry["object_name"] for entry in merchants["models"]}

    assert listed(SEC) == {"ApiKey"}
    assert "ApiKey" not in listed(OPS) and {"Merchant", "WebhookEndpoint", "WebhookDelivery"} <= listed(OPS)
    assert listed(FIN) == {"Merchant"}


# (url name, argument from the world or None) -> the roles that get 200; every other role gets 403.
PAGES = [
    ("admin:payments_payment_changelist", None, {OPS, FIN, SUP}),
    ("admin:payments_payment_change", "payment", {OPS, FIN, SUP}),
    ("admin:payments_payment_export", None, {OPS, FIN, SUP}),
    ("admin:refunds_refund_changelist", None, {OPS, FIN, SUP}),
    ("admin:refunds_refundfile_changelist", None, {OPS}),
    ("admin:refunds_refundfile_add", None, {OPS}),
    ("admin:merchants_merchant_changelist", None, {OPS, FIN}),
    ("admin:merchants_merchant_change", "merchant", {OPS, FIN}),
    ("admin:merchants_merchant_add", None, {OPS}),
    ("admin:merchants_apikey_changelist", None, {SEC}),
    ("admin:merchants_apikey_change", "api_key", {SEC}),
    ("admin:merchants_apikey_add", None, {SEC}),
    ("admin:webhooks_webhookendpoint_changelist", None, {OPS}),
    ("admin:webhooks_webhookdelivery_changelist", None, {OPS}),
    ("admin:gateways_status", None, {OPS}),
    ("admin:gateways_gatewaynotification_changelist", None, {OPS}),
    ("admin:settlements_settlementbatch_changelist", None, {FIN}),
    ("admin:settlements_settlementbatch_change", "batch", {FIN}),
    ("admin:settlements_settlementline_changelist", None, {FIN}),
    ("admin:settlements_feeplan_changelist", None, {FIN}),
    ("admin:settlements_feeplan_add", None, {FIN}),
    ("admin:settlements_gatewayreport_changelist", None, {FIN}),
    ("admin:settlements_reconciliationrun_changelist", None, {FIN}),
    ("admin:settlements_reconciliationexception_changelist", None, {FIN}),
    ("admin:auth_user_changelist", None, {SEC}),
    ("admin:auth_user_add", None, {SEC}),
    ("admin:auth_group_changelist", None, {SEC}),
    ("admin:axes_accessattempt_changelist", None, {SEC}),
    # Engineering's: no role.
    ("admin:api_idempotencyrecord_changelist", None, set()),
    ("admin:events_outboxevent_changelist", None, set()),
    ("admin:django_celery_beat_periodictask_changelist", None, set()),
    ("admin:payment_requests_paymentrequest_changelist", None, set()),
    ("admin:gateways_simulatorcharge_changelist", None, set()),
]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_its_pages_and_is_refused_the_others(signed_in, world, role):
    client = signed_in(role)
    answers = {}
    for name, argument, allowed in PAGES:
        url = reverse(name, args=[getattr(world, argument).pk] if argument else [])
        answers[name] = client.get(url).status_code

    assert answers == {name: 200 if role in allowed else 403 for name, _, allowed in PAGES}


# Changelist -> the actions each role is offered there (no role may delete anything in bulk).
ACTIONS = {
    "admin:payments_payment_changelist": {OPS: {"restart_recovery"}},
    "admin:refunds_refund_changelist": {OPS: {"retry_failed", "cancel_pending", "restart_flagged"}},
    "admin:settlements_settlementbatch_changelist": {FIN: {"mark_paid_out", "hold", "release", "regenerate_files"}},
    "admin:settlements_reconciliationexception_changelist": {FIN: {"resolve_selected"}},
    "admin:merchants_apikey_changelist": {SEC: {"revoke_keys", "rotate_keys"}},
    "admin:webhooks_webhookdelivery_changelist": {OPS: {"redeliver"}},
    "admin:merchants_merchant_changelist": {},
    "admin:auth_user_changelist": {},
}


@pytest.mark.parametrize("role", [OPS, FIN, SUP, SEC])
def test_each_role_is_offered_exactly_its_actions(signed_in, role):
    client = signed_in(role)
    offered = {}
    for name in ACTIONS:
        response = client.get(reverse(name))
        if response.status_code == 200:
            form = response.context["action_form"]
            offered[name] = {value for value, _ in form.fields["action"].choices if value} if form else set()

    assert offered == {
        name: by_role.get(role, set()) for name, by_role in ACTIONS.items() if name in offered
    }
    assert not any("delete_selected" in actions for actions in offered.values())


def test_a_role_less_staff_user_is_refused_every_page_and_sees_no_panel(signed_in, world):
    client = signed_in(NONE)

    index = client.get(reverse("admin:index"))

    assert index.context["app_list"] == [] and index.context["panels"] == []
    assert client.get(reverse("admin:payments_payment_change", args=[world.payment.pk])).status_code == 403


def test_staff_of_each_role_sign_in_with_their_password(client, django_user_model):
    from .conftest import PASSWORD, staff_user

    staff_user(django_user_model, "olivia", OPS)

    response = client.post(reverse("admin:login"), {"username": "olivia", "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert [s["name"] for s in client.get("/admin/").context["app_list"]] == SECTIONS[OPS]
