"""The staff admin for settlement: read-only batches and lines, payout files as downloads, and the
paid-out, hold (with a reason) and rebuild actions behind their permissions."""

import csv
import datetime as dt
import hashlib
import io

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from settlements.models import BatchStatus, FeePlan, SettlementBatch
from settlements.services import settlement_run
from tests.factories import MerchantFactory, captured_payment, completed_refund

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:settlements_settlementbatch_changelist"
CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


def staff(django_user_model, client, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="settlements", codename__in=codenames))
    client.force_login(user)
    return client


@pytest.fixture
def batch():
    merchant = MerchantFactory(code="shop-a", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
    payment = captured_payment(merchant=merchant, amount="80.00", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=1))
    completed_refund(payment=payment, amount="1.00", completed_at=CUTOFF - dt.timedelta(minutes=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    return SettlementBatch.objects.get(pk=outcome.batch_id)


def told(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_viewer_sees_the_batch_and_downloads_its_files_byte_for_byte(client, django_user_model, batch):
    viewer = staff(django_user_model, client, "viewer", "view_settlementbatch", "view_settlementline")

    page = viewer.get(reverse("admin:settlements_settlementbatch_change", args=[batch.pk]))
    xml = viewer.get(reverse("admin:settlements_settlementbatch_file", args=[batch.pk, "pain001"]))

    assert page.status_code == 200 and b"79.00 EUR" in page.content and b"pain.001.001.09.xml" in page.content
    stored = batch.payout_files.get(kind="pain001")
    assert xml.status_code == 200 and xml.content == bytes(stored.content)
    assert hashlib.sha256(xml.content).hexdigest() == stored.sha256 == xml["X-Content-SHA256"]
    assert xml["Content-Disposition"] == f'attachment; filename="{stored.name}"'


def test_the_statement_lists_every_line(client, django_user_model, batch):
    viewer = staff(django_user_model, client, "viewer", "view_settlementbatch", "view_settlementline")

    response = viewer.get(reverse("admin:settlements_settlementbatch_statement", args=[batch.pk]))

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["kind"], r["net"]) for r in rows] == [("payment", "80.00"), ("refund", "-1.00")]


def test_nobody_adds_changes_or_deletes_a_batch(admin_client, batch):
    assert admin_client.get(reverse("admin:settlements_settlementbatch_add")).status_code == 403
    assert admin_client.post(reverse("admin:settlements_settlementbatch_delete", args=[batch.pk]), {"post": "yes"}).status_code == 403
    assert SettlementBatch.objects.filter(pk=batch.pk).exists()


def test_a_hold_asks_for_a_reason_and_records_it(client, django_user_model, batch):
    holder = staff(django_user_model, client, "holder", "view_settlementbatch", "hold_settlementbatch")
    data = {"action": "hold", "_selected_action": [batch.pk]}

    confirm = holder.post(reverse(CHANGELIST), data)
    assert confirm.status_code == 200 and b"Reason" in confirm.content
    done = holder.post(reverse(CHANGELIST), {**data, "post": "yes", "reason": "merchant under review"}, follow=True)

    batch.refresh_from_db()
    # Staff's words are in the history only: the merchant's API says "Held by the bank."
    assert (batch.status, batch.status_reason) == (BatchStatus.HELD, "Held by the bank.")
    assert (batch.status_changes.last().changed_by, batch.status_changes.last().reason) == ("holder", "merchant under review")
    assert "Held: 1 batch." in told(done)
    assert b"merchant sees" in confirm.content


def test_marking_paid_out_needs_its_permission(client, django_user_model, batch):
    viewer = staff(django_user_model, client, "viewer", "view_settlementbatch", "hold_settlementbatch")
    viewer.post(reverse(CHANGELIST), {"action": "mark_paid_out", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PENDING

    payer = staff(django_user_model, client, "payer", "view_settlementbatch", "mark_paid_out_settlementbatch")
    data = {"action": "mark_paid_out", "_selected_action": [batch.pk]}
    confirm = payer.post(reverse(CHANGELIST), data)  # a confirmation page asking for the bank's reference
    assert confirm.status_code == 200 and b"Bank reference" in confirm.content
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PENDING
    empty = payer.post(reverse(CHANGELIST), {**data, "post": "yes", "reason": " "})
    assert empty.status_code == 200 and b"This field is required" in empty.content
    payer.post(reverse(CHANGELIST), {**data, "post": "yes", "reason": "BANK-CONF-0042"})
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAID_OUT
    assert (batch.status_changes.last().reason, batch.status_changes.last().changed_by) == ("BANK-CONF-0042", "payer")


def test_rebuilding_the_files_reports_them_identical(admin_client, batch):
    response = admin_client.post(reverse(CHANGELIST), {"action": "regenerate_files", "_selected_action": [batch.pk]}, follow=True)

    assert f"Batch {batch.id}: payout files built, identical to the stored files." in told(response)


def test_a_fee_plan_refuses_a_fixed_amount_finer_than_its_currency(admin_client, batch):
    data = {
        "merchant": batch.merchant.pk, "basis_points": "140",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "0",
        "currencies-0-currency": "JPY", "currencies-0-fixed": "0.5", "currencies-0-minimum": "",
    }

    response = admin_client.post(reverse("admin:settlements_feeplan_add"), data)

    assert response.status_code == 200 and b"More decimals than JPY has." in response.content
    assert not FeePlan.objects.exists()
    admin_client.post(reverse("admin:settlements_feeplan_add"), {**data, "currencies-0-fixed": "30"})
    assert FeePlan.objects.get().currencies.get().fixed == 30


def test_the_merchant_page_edits_the_settlement_account(admin_client):
    merchant = MerchantFactory(code="shop-b", name="Shop B")
    url = reverse("admin:merchants_merchant_change", args=[merchant.pk])
    data = {
        "name": "Shop B", "is_active": "on", "settlement_iban": "de89 3704 0044 0532 0130 00", "settlement_bic": "",
        "currencies-TOTAL_FORMS": "0", "currencies-INITIAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "0", "gateway_routes-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
    }

    bad = admin_client.post(url, {**data, "settlement_iban": "DE00370400440532013000"})
    assert bad.status_code == 200 and b"Not a valid IBAN" in bad.content
    good = admin_client.post(url, data)
    assert good.status_code == 302
    merchant.refresh_from_db()
    assert merchant.settlement_iban == "DE89370400440532013000"


def test_a_fee_plan_over_100_percent_is_refused_with_a_message(admin_client, batch):
    data = {"merchant": batch.merchant.pk, "basis_points": "10001", "currencies-TOTAL_FORMS": "0", "currencies-INITIAL_FORMS": "0"}

    response = admin_client.post(reverse("admin:settlements_feeplan_add"), data)

    assert response.status_code == 200 and "At most 10000 basis points" in response.content.decode()
