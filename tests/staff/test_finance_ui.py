"""The finance UI by role: Finance reads and works settlement and reconciliation there; the other
roles and role-less staff get the 403 page; accounts whole only with payments.view_full_account."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from .conftest import MERCHANT_IBAN, NO_ROLE

pytestmark = pytest.mark.django_db

PAGES = [
    ("finance:dashboard", None),
    ("finance:batches", None),
    ("finance:batch", "batch"),
    ("finance:runs", None),
    ("finance:exceptions", None),
    ("finance:report-upload", None),
]


@pytest.mark.parametrize("role, answer", [("Finance", 200), ("Operations", 403), ("Support", 403), ("Security", 403), (NO_ROLE, 403)])
def test_only_finance_uses_the_finance_ui(signed_in, world, role, answer):
    client = signed_in(role)

    answers = {name: client.get(reverse(name, args=[getattr(world, arg).pk] if arg else [])).status_code for name, arg in PAGES}

    assert answers == {name: answer for name, _ in PAGES}


def test_finance_sees_the_payee_iban_whole_and_downloads_the_payout_file(signed_in, world):
    client = signed_in("Finance")
    file_url = reverse("finance:payout-file", args=[world.batch.pk, "pain001"])

    page = client.get(reverse("finance:batch", args=[world.batch.pk])).content.decode()

    assert MERCHANT_IBAN in page and file_url in page
    assert client.get(file_url).status_code == 200


def test_a_finance_user_without_whole_accounts_sees_the_iban_masked_and_no_file(world, django_user_model):
    """Finance's pages minus payments.view_full_account, given one by one as a bank might."""
    reader = django_user_model.objects.create_user("reader", password="pw")
    reader.user_permissions.set(Group.objects.get(name="Finance").permissions.exclude(codename="view_full_account"))
    assert not Permission.objects.filter(user=reader, codename="view_full_account").exists()
    client = Client()
    client.force_login(reader)
    file_url = reverse("finance:payout-file", args=[world.batch.pk, "pain001"])

    page = client.get(reverse("finance:batch", args=[world.batch.pk])).content.decode()

    assert MERCHANT_IBAN not in page and "•••• 3000" in page and file_url not in page
    assert client.get(file_url).status_code == 403
