"""Staff actions beyond add, change and delete, in the admin and the finance UI: each recorded by
the service that carries it out, with who and the state before and after."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from gateways.breaker import breaker_for
from payments.models import Payment
from pgi.webhooks.models import WebhookDelivery
from pgi.webhooks.services import deliveries_fan_out, deliveries_send_due
from refunds.models import Refund, RefundStatus
from refunds.services import refund_create
from settlements.models import BatchStatus, SettlementBatch
from settlements.reconciliation.models import Category, ReconciliationException
from settlements.reconciliation.services import reconciliation_report_upload
from settlements.services import settlement_run
from tests.events.conftest import processed
from tests.factories import MerchantFactory, PaymentFactory, captured_payment, completed_refund
from tests.refunds.conftest import failed_refund, flagged_refund, staff_with
from tests.refunds.test_refund_lifecycle import completed_payment
from tests.settlements.test_reconciliation import DAY, crafted_day

from .conftest import events

pytestmark = pytest.mark.django_db


def act(client, changelist: str, action: str, pks, **extra):
    return client.post(reverse(changelist), {"action": action, "_selected_action": list(pks), **extra}, follow=True)


# --- Refunds and payments --------------------------------------------------------------------------


@pytest.fixture
def officer(client, django_user_model):
    user = staff_with(django_user_model, "officer", "view_refund", "view_payment", "retry_refund", "cancel_refund",
                      "restart_refund", "upload_refundfile", "view_refundfile")  # fmt: skip
    client.force_login(user)
    return client


def test_cancelling_a_refund_records_its_status_before_and_after_and_the_reason(officer, principal):
    pending = refund_create(payment_id=completed_payment(principal).id, amount=Decimal("2.00"))

    act(officer, "admin:refunds_refund_changelist", "cancel_pending", [pending.pk], post="yes", reason="customer withdrew")

    assert Refund.objects.get(pk=pending.pk).status == RefundStatus.CANCELLED
    [cancelled] = events(action="refund.cancel")
    assert (cancelled.object_type, cancelled.object_id, cancelled.actor_username) == ("refunds.refund", pending.pk, "officer")
    assert cancelled.before == {"status": "Pending"} and cancelled.after["status"] == "Cancelled"
    assert cancelled.note == "customer withdrew"


def test_retrying_and_restarting_refunds_are_recorded(officer, principal, no_send_task):
    payment = completed_payment(principal)
    failed, flagged = failed_refund(payment), flagged_refund(payment)

    act(officer, "admin:refunds_refund_changelist", "retry_failed", [failed.pk])
    act(officer, "admin:refunds_refund_changelist", "restart_flagged", [flagged.pk])

    [retried] = events(action="refund.retry")
    new = Refund.objects.get(metadata__retryOf=failed.pk)
    assert retried.object_id == failed.pk and retried.after == {"retriedAs": new.pk, "amount": "4.00", "currency": "USD"}
    [restarted] = events(action="refund.restart")
    assert restarted.object_id == flagged.pk
    assert restarted.before["needs_attention"] is True and restarted.after == {"needs_attention": False, "attention_reason": ""}


def test_an_accepted_bulk_refund_file_is_recorded_with_its_totals(officer, principal, no_send_task):
    payment = completed_payment(principal)
    content = f"payment_id,amount,reason\n{payment.id},5.00,goodwill\n".encode()

    response = officer.post(
        reverse("admin:refunds_refundfile_add"), {"file": SimpleUploadedFile("bulk.csv", content, "text/csv")}
    )

    assert response.status_code == 302
    [uploaded] = events(action="refund_file.upload")
    assert uploaded.after["outcome"] == "accepted" and uploaded.after["rows"] == 1
    assert uploaded.after["totals"] == {"USD": "5.00"}


def test_restarting_recovery_of_a_flagged_payment_is_recorded(admin_client):
    payment = PaymentFactory(flagged=True)

    act(admin_client, "admin:payments_payment_changelist", "restart_recovery", [payment.pk])

    assert not Payment.objects.get(pk=payment.pk).needs_attention
    [restarted] = events(action="payment.recovery_restart")
    assert restarted.object_id == payment.pk and restarted.before["needs_attention"] is True
    assert restarted.after["needs_attention"] is False


def test_resetting_a_breaker_is_recorded(admin_client, settings):
    settings.PGI_CIRCUIT_BREAKER = {"failure_threshold": 1, "window_seconds": 60, "open_seconds": 600}
    breaker_for("simulator").record_failure()

    admin_client.post(reverse("admin:gateways_status"), {"reset": "simulator"})

    [reset] = events(action="gateway.breaker_reset")
    assert (reset.object_id, reset.before, reset.after) == ("simulator", {"state": "open"}, {"state": "closed"})


# --- Settlement ------------------------------------------------------------------------------------

CUTOFF = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


@pytest.fixture
def batch():
    merchant = MerchantFactory(code="shop-a", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
    payment = captured_payment(merchant=merchant, amount="80.00", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=1))
    completed_refund(payment=payment, amount="1.00", completed_at=CUTOFF - dt.timedelta(minutes=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    return SettlementBatch.objects.get(pk=outcome.batch_id)


def test_holding_releasing_and_paying_out_a_batch_are_recorded(admin_client, batch):
    changelist = "admin:settlements_settlementbatch_changelist"

    act(admin_client, changelist, "hold", [batch.pk], post="yes", reason="merchant under review")
    act(admin_client, changelist, "release", [batch.pk])
    act(admin_client, changelist, "mark_paid_out", [batch.pk], post="yes", reason="BANKREF-1")

    assert SettlementBatch.objects.get(pk=batch.pk).status == BatchStatus.PAID_OUT
    moves = [(e.action, e.before["status"], e.after["status"], e.note) for e in events(object_type="settlements.settlementbatch")]
    assert moves == [
        ("settlement_batch.hold", "pending", "held", "merchant under review"),
        ("settlement_batch.release", "held", "pending", "released"),
        ("settlement_batch.mark_paid_out", "pending", "paid_out", "BANKREF-1"),
    ]


def test_rebuilding_payout_files_records_their_sha256_before_and_after(admin_client, batch):
    stored = dict(batch.payout_files.values_list("kind", "sha256"))

    act(admin_client, "admin:settlements_settlementbatch_changelist", "regenerate_files", [batch.pk])

    [rebuilt] = events(action="settlement_batch.payout_files_rebuild")
    assert rebuilt.before == stored and rebuilt.after == stored  # built again from the batch: the same bytes


# --- Reconciliation --------------------------------------------------------------------------------


@pytest.fixture
def run(merchant, admin_user):
    day = crafted_day(merchant)
    return reconciliation_report_upload(gateway="simulator", day=DAY, name="sim.csv", content=day["report"], user=admin_user).run


def test_resolving_exceptions_in_the_admin_records_each(admin_client, run):
    missing = list(ReconciliationException.objects.filter(category=Category.MISSING_AT_GATEWAY).values_list("pk", flat=True))

    act(admin_client, "admin:settlements_reconciliationexception_changelist", "resolve_selected", missing,
        post="yes", resolution="accepted", note="in tomorrow's report")  # fmt: skip

    resolved = events(action="reconciliation_exception.resolve")
    assert sorted(int(e.object_id) for e in resolved) == sorted(missing)
    assert all(e.after == {"resolution": "accepted", "resolution_note": "in tomorrow's report"} for e in resolved)


def test_resolving_and_uploading_in_the_finance_ui_are_recorded_as_finance(client, merchant, django_user_model):
    from settlements.finance.services import finance_group_ensure

    fiona = django_user_model.objects.create_user("fiona", password="pw")
    fiona.groups.add(finance_group_ensure())
    client.force_login(fiona)
    day = crafted_day(merchant)

    upload = client.post(reverse("finance:report-upload"), {
        "gateway": "simulator", "day": DAY.isoformat(), "file": SimpleUploadedFile("sim.csv", day["report"], "text/csv"),
    })  # fmt: skip
    assert upload.status_code == 302
    one = ReconciliationException.objects.filter(resolution="").first()
    client.post(reverse("finance:exceptions-resolve"), {"exception": [one.pk], "resolution": "accepted", "note": "ok"})

    [uploaded] = events(action="gateway_report.upload")
    assert (uploaded.via, uploaded.actor_username) == ("finance", "fiona")
    assert uploaded.after["gateway"] == "simulator" and uploaded.after["day"] == DAY.isoformat()
    [resolved] = events(action="reconciliation_exception.resolve")
    assert (resolved.via, resolved.object_id, resolved.before) == ("finance", str(one.pk), {"resolution": ""})


# --- Webhooks --------------------------------------------------------------------------------------


def test_redelivering_a_webhook_is_recorded(admin_client, principal, merchant, endpoint_for, receiver):
    endpoint_for(merchant, ["PAYMENT_PROCESSED"])
    receiver.answers.append((500, b"down"))
    receiver.answers.append((500, b"down"))
    processed(principal)
    deliveries_fan_out()
    deliveries_send_due()
    delivery = WebhookDelivery.objects.get()

    act(admin_client, "admin:webhooks_webhookdelivery_changelist", "redeliver", [delivery.pk])

    [redelivered] = events(action="webhook_delivery.redeliver")
    assert redelivered.object_id == delivery.pk and redelivered.actor_username == "admin"
    assert redelivered.before["next_attempt_at"] != redelivered.after["next_attempt_at"]
