"""Found from outside against a running PGI (red team, staff roles): a list's address filtering by a
masked account, and a member of Security giving themself a role."""

import io

import pytest
from django.contrib.auth.models import Group

from payments.models import Payment
from tests.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db

PAYER_IBAN = "GB29NWBK60161331926819"
PAYMENTS = "/admin/payments/payment/"


@pytest.fixture
def payment() -> Payment:
    return PaymentFactory(merchant=MerchantFactory(), from_account=PAYER_IBAN)


@pytest.mark.parametrize(
    "query",
    [
        f"from_account={PAYER_IBAN}",
        "from_account__startswith=GB29",
        "from_account__contains=NWBK",
        "from_account__regex=^GB",
        "from_account__gt=GA",
        f"from_account__in={PAYER_IBAN},x",
    ],
)
def test_support_cannot_filter_payments_by_account_in_the_address(signed_in, payment, query):
    support = signed_in("Support")

    assert support.get(f"{PAYMENTS}?{query}").status_code == 400
    # The export takes the list's filters: it refuses them the same way.
    assert support.get(f"{PAYMENTS}export.csv?{query}").status_code == 400


def test_staff_who_see_accounts_whole_still_filter_by_account(signed_in, payment):
    operations = signed_in("Operations")

    response = operations.get(f"{PAYMENTS}?from_account__startswith=GB29")

    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [payment]


def test_security_cannot_give_themself_a_role(signed_in, django_user_model):
    security = signed_in("Security")
    me = django_user_model.objects.get(username="security-1")
    page = f"/admin/auth/user/{me.pk}/change/"
    others = [str(g.pk) for g in Group.objects.exclude(name="Security")]

    assert 'name="groups"' not in security.get(page).content.decode()
    response = security.post(
        page,
        {"username": me.username, "is_active": "on", "is_staff": "on", "groups": others,
         "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "_save": "Save"},
    )

    assert response.status_code == 302
    assert sorted(me.groups.values_list("name", flat=True)) == ["Security"]


def test_security_still_gives_others_roles(signed_in, django_user_model):
    security = signed_in("Security")
    colleague = django_user_model.objects.create_user("sam", password="x-long-password-1", is_staff=True)
    support = Group.objects.get(name="Support")

    response = security.post(
        f"/admin/auth/user/{colleague.pk}/change/",
        {"username": "sam", "is_active": "on", "is_staff": "on", "groups": [str(support.pk)],
         "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "_save": "Save"},
    )

    assert response.status_code == 302
    assert list(colleague.groups.values_list("name", flat=True)) == ["Support"]


def test_grant_role_is_recorded_in_the_audit_trail(django_user_model):
    from django.core.management import call_command

    from pgi.audit.models import AuditEvent

    sam = django_user_model.objects.create_user("sam", password="x-long-password-1")

    call_command("grant_role", "sam", "Finance", "Operations", stdout=io.StringIO())
    call_command("grant_role", "sam", "Finance", stdout=io.StringIO())  # holds it already: no change
    call_command("grant_role", "sam", "Operations", "--revoke", stdout=io.StringIO())

    events = list(AuditEvent.objects.filter(object_type="auth.user", object_id=str(sam.pk)).order_by("id"))
    assert [(e.via, e.action, e.before, e.after) for e in events] == [
        (
            "command:grant_role",
            "change",
            {"groups": [], "is_staff": False},
            {"groups": ["Finance", "Operations"], "is_staff": True},
        ),
        ("command:grant_role", "change", {"groups": ["Finance", "Operations"]}, {"groups": ["Finance"]}),
    ]
