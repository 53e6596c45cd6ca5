"""Who may use /finance/: members of Finance (and superusers); anonymous users are sent to the
finance sign-in, every other signed-in user gets the 403 page, admin staff included."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from pgi.staff.roles import FINANCE
from settlements.finance.models import FINANCE_GROUP

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["finance:dashboard", "finance:batches"]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_the_finance_sign_in_with_the_page_to_come_back_to(client, page):
    response = client.get(reverse(page))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('finance:login')}?next={reverse(page)}"


@pytest.mark.parametrize("page", PAGES)
def test_a_finance_member_without_admin_access_opens_every_page(finance, finance_user, page):
    assert not finance_user.is_staff
    assert finance.get(reverse(page)).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_admin_staff_outside_finance_are_refused_with_a_page_saying_why(django_user_model, page):
    staff = django_user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)

    response = signed_in(staff).get(reverse(page))

    assert response.status_code == 403
    assert b'id="finance-forbidden"' in response.content
    assert b"not a member of the <strong>Finance</strong> group" in response.content


def test_a_plain_user_is_refused(django_user_model):
    user = django_user_model.objects.create_user("pat", password=PASSWORD)
    assert signed_in(user).get(reverse("finance:dashboard")).status_code == 403


def test_superusers_pass_as_they_pass_every_permission_check(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@bank.example", PASSWORD)
    assert signed_in(root).get(reverse("finance:dashboard")).status_code == 200


def test_finance_members_do_not_get_into_the_admin(finance):
    response = finance.get(reverse("admin:index"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_the_finance_group_holds_the_finance_role_with_every_permission_the_pages_check():
    held = {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name=FINANCE_GROUP).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }
    assert held == set(FINANCE.permissions)  # pgi/staff/roles.py, nothing more
    assert {
        "settlements.use_finance_ui",
        "settlements.view_settlementbatch",
        "settlements.view_settlementline",
        "settlements.view_payoutfile",
        "payments.view_payment",
        "payments.view_full_account",  # the payee's IBAN and the payout files
        "settlements.view_reconciliationrun",
        "settlements.view_reconciliationexception",
        "settlements.resolve_reconciliationexception",
        "settlements.view_gatewayreport",
        "settlements.add_gatewayreport",  # uploading a report
    } <= held
    # Payments and refunds read-only: nothing of theirs changes through Finance.
    assert not any(perm.startswith(("payments.", "refunds.")) and "view_" not in perm for perm in held)


def test_signing_in_at_the_finance_login_lands_on_the_dashboard(client, finance_user):
    response = client.post(reverse("finance:login"), {"username": "fiona", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == reverse("finance:dashboard")
    assert client.get(reverse("finance:dashboard")).status_code == 200


def test_signing_in_goes_back_to_the_page_asked_for(client, finance_user):
    url = reverse("finance:batches") + "?currency=EUR"
    response = client.post(reverse("finance:login"), {"username": "fiona", "password": PASSWORD, "next": url})
    assert response["Location"] == url


def test_a_wrong_password_is_a_form_error_on_the_finance_page(client, finance_user):
    response = client.post(reverse("finance:login"), {"username": "fiona", "password": "nope"})

    assert response.status_code == 200
    assert b"Sign in to PGI Finance" in response.content
    assert b'class="alert error"' in response.content
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post_and_ends_the_session(finance):
    assert finance.get(reverse("finance:logout")).status_code == 405

    response = finance.post(reverse("finance:logout"))

    assert response.status_code == 302 and response["Location"] == reverse("finance:login")
    assert finance.get(reverse("finance:dashboard")).status_code == 302


def test_repeated_failures_lock_the_finance_sign_in_with_its_own_page(client, finance_user, settings):
    answers = [
        client.post(reverse("finance:login"), {"username": "fiona", "password": "wrong"}, REMOTE_ADDR="198.51.100.7").status_code
        for _ in range(settings.AXES_FAILURE_LIMIT + 1)
    ]
    locked = client.post(reverse("finance:login"), {"username": "fiona", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")

    assert answers[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[-1] == 429
    assert locked.status_code == 429
    assert b'id="login-locked-out"' in locked.content
    assert reverse("finance:login").encode() in locked.content  # back to the finance sign-in, not the admin's
    assert b"admin/css" not in locked.content
    assert "_auth_user_id" not in client.session


def test_the_admin_lockout_page_is_still_the_admins(client, django_user_model, settings):
    django_user_model.objects.create_superuser("staff", "staff@bank.example", PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(reverse("admin:login"), {"username": "staff", "password": "wrong"}, REMOTE_ADDR="198.51.100.8")
    assert response.status_code == 429
    assert reverse("admin:login").encode() in response.content
