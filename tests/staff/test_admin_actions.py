"""What each role does in the admin, and what it is refused with nothing changed: recovery restarts,
payouts held, gateway breakers reset, merchants and their routes, API keys, staff users."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from gateways.breaker import breaker_for
from payments.models import Payment
from settlements.models import BatchStatus, SettlementBatch

from .conftest import NO_ROLE

pytestmark = pytest.mark.django_db

OPS, FIN, SUP, SEC = "Operations", "Finance", "Support", "Security"


def act(client, changelist: str, action: str, pk, **extra):
    return client.post(reverse(changelist), {"action": action, "_selected_action": [pk], **extra})


@pytest.mark.parametrize("role, restarted", [(OPS, True), (FIN, False), (SUP, False), (NO_ROLE, False)])
def test_only_operations_restarts_the_recovery_of_a_flagged_payment(signed_in, world, role, restarted):
    response = act(signed_in(role), "admin:payments_payment_changelist", "restart_recovery", world.payment.pk)

    assert response.status_code in (200, 302, 403)
    assert Payment.objects.get(pk=world.payment.pk).needs_attention is not restarted


@pytest.mark.parametrize("role, held", [(FIN, True), (OPS, False), (SUP, False), (SEC, False)])
def test_only_finance_holds_a_payout(signed_in, world, role, held):
    act(signed_in(role), "admin:settlements_settlementbatch_changelist", "hold", world.batch.pk, post="yes", reason="KYC review")

    status = SettlementBatch.objects.get(pk=world.batch.pk).status
    assert (status == BatchStatus.HELD) is held


def test_finance_downloads_payout_files_which_nobody_else_reaches(signed_in, world):
    url = reverse("admin:settlements_settlementbatch_file", args=[world.batch.pk, "pain001"])

    assert signed_in(FIN).get(url).status_code == 200
    assert {signed_in(role).get(url).status_code for role in (OPS, SUP, SEC, NO_ROLE)} == {403}


def test_operations_resets_a_gateway_breaker_and_the_others_are_refused(signed_in, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 600}
    breaker = breaker_for("simulator")
    breaker.record_failure()
    url = reverse("admin:gateways_status")

    refused = {role: signed_in(role).post(url, {"reset": "simulator"}).status_code for role in (FIN, SUP, SEC)}
    still_open = breaker.snapshot().state.value
    done = signed_in(OPS).post(url, {"reset": "simulator"})

    assert refused == {FIN: 403, SUP: 403, SEC: 403} and still_open == "open"
    assert done.status_code == 302 and breaker.snapshot().state.value == "closed"


def test_operations_edits_a_merchant_and_its_routes_finance_only_reads_it(signed_in, world):
    url = reverse("admin:merchants_merchant_change", args=[world.merchant.pk])

    operations = signed_in(OPS).get(url)
    finance = signed_in(FIN).get(url)
    refused = signed_in(FIN).post(url, {"name": "Renamed by Finance"})

    inlines = {formset.opts.verbose_name for formset in operations.context["inline_admin_formsets"]}
    assert operations.context["has_change_permission"] and "gateway route" in inlines
    assert "API key" not in inlines and b"Issue a new API key" not in operations.content
    assert not finance.context["has_change_permission"]
    assert finance.context["inline_admin_formsets"] == []  # neither routes nor keys
    assert refused.status_code == 403 and world.merchant.__class__.objects.get(pk=world.merchant.pk).name != "Renamed by Finance"


def test_security_issues_and_revokes_keys_operations_cannot(signed_in, world):
    refused = act(signed_in(OPS), "admin:merchants_apikey_changelist", "revoke_keys", world.api_key.pk)
    world.api_key.refresh_from_db()
    revoked_by_operations = world.api_key.revoked_at is not None

    act(signed_in(SEC), "admin:merchants_apikey_changelist", "revoke_keys", world.api_key.pk)
    world.api_key.refresh_from_db()

    assert refused.status_code == 403 and not revoked_by_operations
    assert world.api_key.revoked_at is not None


def user_form(user, **changes) -> dict:
    data = {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [group.pk for group in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    data.update(changes)
    return data


def test_security_gives_a_staff_user_a_role_but_never_superuser_status(signed_in, django_user_model):
    sam = django_user_model.objects.create_user("sam", "sam@bank.example", "pw", is_staff=True)
    support = Group.objects.get(name=SUP)
    security = signed_in(SEC)

    response = security.post(
        reverse("admin:auth_user_change", args=[sam.pk]),
        user_form(sam, groups=[support.pk], is_superuser="on"),
    )

    sam.refresh_from_db()
    assert response.status_code == 302
    assert list(sam.groups.values_list("name", flat=True)) == [SUP]
    assert not sam.is_superuser  # read-only for Security: the posted value is ignored


def test_security_cannot_change_a_superuser_or_its_password(signed_in, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@bank.example", "break-glass-pw")
    security = signed_in(SEC)

    change = security.post(reverse("admin:auth_user_change", args=[root.pk]), user_form(root, is_staff=""))
    password = security.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": "taken-over-1234", "password2": "taken-over-1234", "usable_password": "true"},
    )

    root.refresh_from_db()
    assert change.status_code == 403 and password.status_code == 403
    assert root.is_staff and root.check_password("break-glass-pw")


def test_security_sees_the_roles_read_only(signed_in):
    support = Group.objects.get(name=SUP)

    page = signed_in(SEC).get(reverse("admin:auth_group_change", args=[support.pk]))
    refused = signed_in(SEC).post(reverse("admin:auth_group_change", args=[support.pk]), {"name": SUP, "permissions": []})

    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert refused.status_code == 403 and support.permissions.count() == 2


def test_the_user_list_shows_each_users_roles(signed_in, django_user_model):
    from .conftest import staff_user

    staff_user(django_user_model, "fiona", FIN)

    response = signed_in(SEC).get(reverse("admin:auth_user_changelist"), {"q": "fiona"})

    [row] = response.context["cl"].result_list
    assert response.context["cl"].model_admin.roles(row) == FIN
    assert get_user_model().objects.get(username="fiona").is_staff
