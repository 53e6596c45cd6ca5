"""Account identifiers in the admin: whole for Operations and Finance (payments.view_full_account),
the last four characters for Support and for staff without that permission, in pages, exports and
searches alike."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from pgi.admin_masking import account_masked

from .conftest import MERCHANT_IBAN, PAYER_IBAN

pytestmark = pytest.mark.django_db

OPS, FIN, SUP = "Operations", "Finance", "Support"


def test_masking_keeps_the_last_four_characters_only():
    assert account_masked("GB29 NWBK 6016 1331 9268 19") == "•••• 6819"
    assert account_masked("1234") == "••••"
    assert account_masked("") == "-"


@pytest.mark.parametrize("role, whole", [(OPS, True), (FIN, True), (SUP, False)])
def test_the_payment_page_shows_the_from_account_whole_only_to_roles_that_need_it(signed_in, world, role, whole):
    page = signed_in(role).get(reverse("admin:payments_payment_change", args=[world.payment.pk])).content.decode()

    assert (PAYER_IBAN in page) is whole
    assert ("•••• 6819" in page) is not whole


@pytest.mark.parametrize("role, whole", [(OPS, True), (SUP, False)])
def test_the_payments_export_masks_accounts_for_support(signed_in, world, role, whole):
    response = signed_in(role).get(reverse("admin:payments_payment_export"), {"q": "order-7"})

    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["from_account"] == (PAYER_IBAN if whole else "•••• 6819")


@pytest.mark.parametrize("role, found", [(OPS, 1), (SUP, 0)])
def test_support_cannot_find_a_payment_by_its_account(signed_in, world, role, found):
    response = signed_in(role).get(reverse("admin:payments_payment_changelist"), {"q": PAYER_IBAN})

    assert len(response.context["cl"].result_list) == found


def test_finance_sees_the_settlement_iban_whole_a_merchant_viewer_without_the_permission_masked(
    signed_in, world, django_user_model
):
    url = reverse("admin:merchants_merchant_change", args=[world.merchant.pk])
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_merchant"))
    client = Client()
    client.force_login(viewer)

    finance = signed_in(FIN).get(url).content.decode()
    masked = client.get(url).content.decode()

    assert MERCHANT_IBAN in finance
    assert MERCHANT_IBAN not in masked and "•••• 3000" in masked


def test_operations_edits_the_settlement_iban_it_sees_whole(signed_in, world):
    page = signed_in(OPS).get(reverse("admin:merchants_merchant_change", args=[world.merchant.pk]))

    assert "settlement_iban" in page.context["adminform"].form.fields
    assert page.context["adminform"].form.initial["settlement_iban"] == MERCHANT_IBAN


def test_a_merchant_editor_without_whole_accounts_cannot_overwrite_the_iban_blind(world, django_user_model):
    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.set(Permission.objects.filter(codename__in=["view_merchant", "change_merchant"]))
    client = Client()
    client.force_login(editor)

    page = client.get(reverse("admin:merchants_merchant_change", args=[world.merchant.pk]))

    assert "settlement_iban" not in page.context["adminform"].form.fields
    assert "•••• 3000" in page.content.decode()


def test_finance_sees_the_payee_iban_and_the_payout_files_of_a_batch(signed_in, world):
    page = signed_in(FIN).get(reverse("admin:settlements_settlementbatch_change", args=[world.batch.pk])).content.decode()

    assert MERCHANT_IBAN in page
    assert reverse("admin:settlements_settlementbatch_file", args=[world.batch.pk, "pain001"]) in page
