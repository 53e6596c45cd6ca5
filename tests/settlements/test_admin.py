"""The staff admin for settlement: read-only batches and lines, payout files as downloads, and the
paid-out, hold (with a reason) and rebuild actions behind their permissions."""

import csv
import datetime as dt
import hashlib
import io
from decimal import Decimal

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
    # The files hold the payee's IBAN: whole accounts are needed too (pgi/staff/roles.py).
    django_user_model.objects.get(username="viewer").user_permissions.add(
        Permission.objects.get(content_type__app_label="payments", codename="view_full_account")
    )

    page = viewer.get(reverse("admin:settlements_settlementbatch_change", args=[batch.pk]))
    xml = viewer.get(reverse("admin:settlements_settlementbatch_file", args=[batch.pk, "pain001"]))

    assert page.status_code == 200 and b"79.00 EUR" in page.content and b"pain.001.001.09.xml" in page.content
    stored = batch.payout_files.get(kind="pain001")
    assert xml.status_code == 200 and xml.content == bytes(stored.content)
    assert hashlib.sha256(xml.content).hexdigest() == stored.sha256 == xml["X-Content-SHA256"]
    assert xml["Content-Disposition"] == f'attachment; filename="{stored.name}"'


def test_a_viewer_without_whole_accounts_sees_the_iban_masked_and_gets_no_file(client, django_user_model, batch):
    viewer = staff(django_user_model, client, "viewer", "view_settlementbatch", "view_settlementline")

    page = viewer.get(reverse("admin:settlements_settlementbatch_change", args=[batch.pk]))
    xml = viewer.get(reverse("admin:settlements_settlementbatch_file", args=[batch.pk, "pain001"]))

    assert page.status_code == 200 and "•••• 3000" in page.content.decode()
    assert b"DE89370400440532013000" not in page.content and b"/file/pain001/" not in page.content
    assert xml.status_code == 403


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


def test_the_statement_needs_the_line_view_permission(client, django_user_model, batch):
    viewer = staff(django_user_model, client, "batch-viewer", "view_settlementbatch")

    response = viewer.get(reverse("admin:settlements_settlementbatch_statement", args=[batch.pk]))

    assert response.status_code == 403


def test_a_403_is_logged_without_a_traceback(client, django_user_model, batch, caplog):
    viewer = staff(django_user_model, client, "batch-viewer", "view_settlementbatch")

    with caplog.at_level("INFO", logger="django.request"):
        viewer.get(reverse("admin:settlements_settlementbatch_statement", args=[batch.pk]))

    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.status_code == 403 and record.exc_info is None


def test_rebuilding_is_recorded_and_refused_for_a_paid_out_batch(admin_client, batch):
    admin_client.post(reverse(CHANGELIST), {"action": "regenerate_files", "_selected_action": [batch.pk]})
    assert batch.status_changes.last().reason.startswith("Payout files built again (identical)")
    admin_client.post(
        reverse(CHANGELIST), {"action": "mark_paid_out", "_selected_action": [batch.pk], "post": "yes", "reason": "B-1"}
    )
    stored = dict(batch.payout_files.values_list("kind", "sha256"))

    response = admin_client.post(
        reverse(CHANGELIST), {"action": "regenerate_files", "_selected_action": [batch.pk]}, follow=True
    )

    assert any("SETTLEMENT_PAID_OUT" in message for message in told(response))
    assert dict(batch.payout_files.values_list("kind", "sha256")) == stored


@pytest.mark.parametrize(
    "fixed, minimum, currency, field, message",
    [
        ("-1", "", "EUR", "fixed", "Must be 0 or more."),
        ("0", "-5", "EUR", "minimum", "Must be 0 or more."),
        ("1", "", "CHF", "currency", "does not take payments in CHF"),
    ],
)
def test_a_fee_plan_says_what_is_wrong_in_words(admin_client, batch, fixed, minimum, currency, field, message):
    data = {
        "merchant": batch.merchant.pk, "basis_points": "140",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "0",
        "currencies-0-currency": currency, "currencies-0-fixed": fixed, "currencies-0-minimum": minimum,
    }

    response = admin_client.post(reverse("admin:settlements_feeplan_add"), data)

    assert response.status_code == 200 and message in response.content.decode()
    assert b"Constraint" not in response.content and not FeePlan.objects.exists()


@pytest.mark.parametrize("fixed, stored", [("1e2", "100.00"), ("-0", "0.00")])
def test_a_fee_plan_amount_is_stored_as_its_currency_writes_it(admin_client, batch, fixed, stored):
    data = {
        "merchant": batch.merchant.pk, "basis_points": "140",
        "currencies-TOTAL_FORMS": "1", "currencies-INITIAL_FORMS": "0",
        "currencies-0-currency": "EUR", "currencies-0-fixed": fixed, "currencies-0-minimum": "",
    }

    admin_client.post(reverse("admin:settlements_feeplan_add"), data)

    assert str(FeePlan.objects.get().currencies.get().fixed.quantize(Decimal("0.01"))) == stored
    assert not FeePlan.objects.get().currencies.get().fixed.is_signed()


def test_the_merchant_page_refuses_a_control_character_in_the_name(admin_client):
    merchant = MerchantFactory(code="shop-n", name="Shop N")
    data = {
        "name": "Shop\x0bN", "is_active": "on", "settlement_iban": "", "settlement_bic": "",
        "currencies-TOTAL_FORMS": "0", "currencies-INITIAL_FORMS": "0",
        "gateway_routes-TOTAL_FORMS": "0", "gateway_routes-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
    }

    response = admin_client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), data)

    assert response.status_code == 200 and "control characters" in response.content.decode()
    merchant.refresh_from_db()
    assert merchant.name == "Shop N"


@pytest.mark.parametrize(
    "hour, minute, timezone_name, refused",
    [("*", "*/15", "UTC", "give one hour"), ("2", "30", "Europe/Berlin", "does not exist"), ("23", "30", "Europe/Berlin", "")],
)
def test_settle_dailys_crontab_names_one_time_that_exists_every_day(admin_client, hour, minute, timezone_name, refused):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="settle-daily")
    crontab = task.crontab
    data = {
        "minute": minute, "hour": hour, "day_of_week": "*", "day_of_month": "*", "month_of_year": "*",
        "timezone": timezone_name,
        # The page lists the tasks on the crontab (an inline): its management form.
        "periodictask_set-TOTAL_FORMS": "1", "periodictask_set-INITIAL_FORMS": "1",
        "periodictask_set-0-id": str(task.pk), "periodictask_set-0-crontab": str(crontab.pk),
    }

    response = admin_client.post(reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk]), data)

    crontab.refresh_from_db()
    if not refused:
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert (crontab.hour, crontab.minute) == (hour, minute)
    else:
        assert response.status_code == 200 and refused in response.content.decode()
        assert (crontab.hour, crontab.minute) == ("0", "0")


def test_settle_daily_cannot_be_moved_to_a_crontab_of_several_times_a_day():
    from django.forms.models import model_to_dict
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from settlements.admin import SettleDailyPeriodicTaskForm

    task = PeriodicTask.objects.get(name="settle-daily")
    every_quarter = CrontabSchedule.objects.create(minute="*/15", hour="*", timezone="UTC")
    data = {k: v for k, v in model_to_dict(task).items() if v is not None}

    refused = SettleDailyPeriodicTaskForm(instance=task, data={**data, "crontab": every_quarter.pk, "regtask": task.task})
    taken = SettleDailyPeriodicTaskForm(instance=task, data={**data, "regtask": task.task})

    assert not refused.is_valid() and "give one hour" in str(refused.errors["crontab"])
    assert taken.is_valid(), taken.errors
