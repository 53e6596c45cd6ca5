"""The staff admin for refunds and bulk refund files, on real PostgreSQL with the simulator."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from payments.models import GatewayAttempt, OperationStatus, Payment
from refunds import admin_files
from refunds.admin_files import error_summary
from refunds.bulk import refund_file_upload
from refunds.models import Refund, RefundFile, RefundSource, RefundStatus
from refunds.services import refund_claim, refund_create, refund_send

from .conftest import captured_payments, failed_refund, flagged_refund, staff_with
from .test_refund_lifecycle import completed_payment

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:refunds_refund_changelist"


def found(client, **params) -> list[Refund]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def act(client, action: str, refunds, **extra):
    data = {"action": action, "_selected_action": [r.pk for r in refunds], **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


def told(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def payment(principal):
    return completed_payment(principal)


@pytest.fixture
def officer(client, django_user_model):
    """Staff who may see refunds and retry, cancel and restart them."""
    user = staff_with(
        django_user_model, "officer", "view_refund", "view_payment", "retry_refund", "cancel_refund", "restart_refund"
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client, django_user_model):
    """Staff who may only look."""
    client.force_login(staff_with(django_user_model, "viewer", "view_refund", "view_payment", "view_refundfile"))
    return client


# --- The list ----------------------------------------------------------------------------------------


def test_the_list_shows_exact_amounts_merchant_status_and_flag(viewer, principal):
    usd = completed_payment(principal)
    refund_create(payment_id=usd.id, amount=Decimal("12.5"))
    flagged_refund(usd)

    html = viewer.get(reverse(CHANGELIST)).content.decode()

    assert "12.50 USD" in html and "3.00 USD" in html
    assert "merchant456" in html and usd.id in html
    assert html.count('class="pgi-flag"') == 1


def test_filters_by_status_attention_gateway_merchant_and_file(viewer, payment, merchant, other_merchant, uploader):
    pending = refund_create(payment_id=payment.id, amount=Decimal("10.00"))
    failed = failed_refund(payment)
    flagged = flagged_refund(payment)
    (elsewhere,) = captured_payments(other_merchant, 1)
    refund_file = refund_file_upload(
        name="f.csv", content=f"payment_id,amount,reason\n{elsewhere.id},1.00,x\n".encode(), user=uploader
    )
    from_file = Refund.objects.get(refund_file=refund_file)

    assert set(found(viewer, status__exact="Failed")) == {failed}
    assert set(found(viewer, attention="yes")) == {flagged}
    assert set(found(viewer, attention="failed")) == {failed}
    assert set(found(viewer, gateway="simulator")) == {pending, failed, flagged, from_file}
    assert set(found(viewer, merchant__id__exact=other_merchant.pk)) == {from_file}
    assert set(found(viewer, file=refund_file.pk)) == {from_file}
    assert set(found(viewer, source__exact="bulk_file")) == {from_file}


def test_search_is_exact_by_refund_id_payment_id_gateway_reference_and_payment_reference(viewer, principal):
    first, second = completed_payment(principal), completed_payment(principal)
    Payment.objects.filter(pk=second.pk).update(reference="order-77")
    wanted = refund_create(payment_id=first.id, amount=Decimal("5.00"))
    assert refund_claim(wanted.id) and refund_send(refund_id=wanted.id) == "completed"
    wanted.refresh_from_db()
    other = refund_create(payment_id=second.id, amount=Decimal("5.00"))

    assert found(viewer, q=wanted.id) == [wanted]
    assert found(viewer, q=f" {wanted.id.upper()} ") == [wanted]
    assert found(viewer, q=first.id) == [wanted]
    assert wanted.gateway_reference and found(viewer, q=wanted.gateway_reference) == [wanted]
    assert found(viewer, q="order-77") == [other]
    assert found(viewer, q="order-7") == []


def test_the_refund_page_shows_its_history_and_its_gateway_operation(viewer, payment):
    """To staff who may view refunds: the history needs no permission of its own."""
    refund = failed_refund(payment)

    response = viewer.get(reverse("admin:refunds_refund_change", args=[refund.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "4.00 USD" in html and "REFUND_DECLINED" in html
    assert f"refund {refund.pk}: failed" in html
    history = [form.instance for form in response.context["inline_admin_formsets"][0].formset.forms]
    assert [(h.from_status, h.to_status) for h in history] == [("", "Pending"), ("Pending", "Failed")]


def test_the_payment_page_lists_its_refunds_after_its_history(admin_client, payment):
    refund = refund_create(payment_id=payment.id, amount=Decimal("7.00"))

    response = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))

    names = [f.opts.verbose_name_plural for f in response.context["inline_admin_formsets"]]
    assert names[:2] == ["status history", "refunds"]
    html = response.content.decode()
    assert reverse("admin:refunds_refund_change", args=[refund.pk]) in html and "7.00 USD" in html


# --- Actions -----------------------------------------------------------------------------------------


def test_staff_with_the_permissions_are_offered_the_actions(officer):
    offered = {name for name, _ in officer.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices}
    assert {"retry_failed", "cancel_pending", "restart_flagged"} <= offered


def test_staff_without_the_permissions_see_no_action_and_cannot_post_one(viewer, payment):
    failed = failed_refund(payment)
    pending = refund_create(payment_id=payment.id, amount=Decimal("1.00"))

    response = viewer.get(reverse(CHANGELIST))
    assert response.context["action_form"] is None or not [
        name for name, _ in response.context["action_form"].fields["action"].choices if name
    ]
    act(viewer, "retry_failed", [failed])
    act(viewer, "cancel_pending", [pending], post="yes", reason="x")

    assert Refund.objects.count() == 2
    assert Refund.objects.get(pk=pending.pk).status == RefundStatus.PENDING


def test_retry_makes_a_new_refund_and_names_it_once(officer, payment):
    failed = failed_refund(payment)

    response = act(officer, "retry_failed", [failed])

    new = Refund.objects.exclude(pk=failed.pk).get()
    assert new.metadata["retryOf"] == failed.pk and new.amount == failed.amount
    assert any(new.pk in text and failed.pk in text for text in told(response))

    again = act(officer, "retry_failed", [failed])
    assert Refund.objects.count() == 2
    assert any("REFUND_ALREADY_RETRIED" in text for text in told(again))


def test_cancel_asks_for_a_reason_first(officer, payment):
    pending = refund_create(payment_id=payment.id, amount=Decimal("2.00"))

    confirmation = act(officer, "cancel_pending", [pending])
    assert confirmation.templates[0].name == "admin/refunds/refund/cancel_confirmation.html"
    assert pending.pk in confirmation.content.decode()
    no_reason = act(officer, "cancel_pending", [pending], post="yes", reason="  ")
    assert no_reason.context["form"].errors["reason"]
    assert Refund.objects.get(pk=pending.pk).status == RefundStatus.PENDING

    done = act(officer, "cancel_pending", [pending], post="yes", reason="customer withdrew")

    cancelled = Refund.objects.get(pk=pending.pk)
    assert (cancelled.status, cancelled.failure_code, cancelled.failure_message) == (
        RefundStatus.CANCELLED,
        "CANCELLED_BY_STAFF",
        "customer withdrew",
    )
    assert "cancelled by officer: customer withdrew" in cancelled.status_changes.last().reason
    assert any("Cancelled 1 refund" in text for text in told(done))


def test_cancel_is_refused_for_a_refund_that_may_have_reached_the_gateway(officer, payment):
    sent = refund_create(payment_id=payment.id, amount=Decimal("2.00"))
    GatewayAttempt.objects.create(
        payment=payment, operation="refund", gateway="simulator", idempotency_key=sent.pk, outcome="timeout"
    )
    unsent = refund_create(payment_id=payment.id, amount=Decimal("3.00"))

    response = act(officer, "cancel_pending", [sent, unsent], post="yes", reason="duplicate")

    assert Refund.objects.get(pk=sent.pk).status == RefundStatus.PENDING
    assert Refund.objects.get(pk=unsent.pk).status == RefundStatus.CANCELLED
    assert any(
        sent.pk in text and "REFUND_NOT_CANCELLABLE" in text and "may have reached the gateway" in text
        for text in told(response)
    )


def test_restart_clears_a_flag(officer, payment):
    flagged = flagged_refund(payment)
    assert flagged.needs_attention

    response = act(officer, "restart_flagged", [flagged])

    assert not Refund.objects.get(pk=flagged.pk).needs_attention
    assert any("Restarted 1 refund" in text for text in told(response))


# --- Bulk files --------------------------------------------------------------------------------------

UPLOAD = "admin:refunds_refundfile_add"


def upload(client, content: bytes, name="refunds.csv"):
    return client.post(
        reverse(UPLOAD), {"file": SimpleUploadedFile(name, content, content_type="text/csv")}, follow=True
    )


def test_only_staff_with_the_upload_permission_reach_the_upload_page(viewer, client, uploader):
    assert viewer.get(reverse(UPLOAD)).status_code == 403
    assert "upload-refund-file" not in viewer.get(reverse("admin:refunds_refundfile_changelist")).content.decode()

    client.force_login(uploader)
    page = client.get(reverse(UPLOAD))
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.content.decode()
    assert "upload-refund-file" in client.get(reverse("admin:refunds_refundfile_changelist")).content.decode()


def test_an_accepted_upload_shows_the_file_with_its_refunds(client, uploader, merchant):
    client.force_login(uploader)
    payments = captured_payments(merchant, 3)
    content = "payment_id,amount,reason\n" + "".join(f"{p.id},2.50,late\n" for p in payments)

    response = upload(client, content.encode())

    refund_file = RefundFile.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:refunds_refundfile_change", args=[refund_file.pk])
    assert refund_file.outcome == "accepted" and refund_file.uploaded_by == uploader
    html = response.content.decode()
    assert "7.50 USD" in html and "the 3 refunds of this file" in html
    assert any("Accepted refunds.csv: 3 refunds, 7.50 USD" in text for text in told(response))
    assert client.get(reverse("admin:refunds_refundfile_file", args=[refund_file.pk])).content == content.encode()


def test_a_rejected_upload_shows_its_errors_and_the_report_downloads(client, uploader, merchant):
    client.force_login(uploader)
    (payment,) = captured_payments(merchant, 1)

    response = upload(client, f"payment_id,amount,reason\n{payment.id},10.01,x\nnope,1.00,x\n".encode())

    refund_file = RefundFile.objects.get()
    assert refund_file.outcome == "rejected" and not Refund.objects.exists()
    html = response.content.decode()
    assert 'id="file-errors"' in html and "REFUND_EXCEEDS_AVAILABLE" in html and "INVALID_PAYMENT_ID" in html
    assert any("Rejected refunds.csv: 2 errors in 2 of its 2 rows" in text for text in told(response))
    report = client.get(reverse("admin:refunds_refundfile_report", args=[refund_file.pk]))
    assert report["Content-Type"].startswith("text/csv") and "attachment" in report["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(report.content.decode())))
    assert [line[:3] for line in lines] == [
        ["row", "column", "code"],
        ["2", "amount", "REFUND_EXCEEDS_AVAILABLE"],
        ["3", "payment_id", "INVALID_PAYMENT_ID"],
    ]


def test_the_same_file_uploaded_again_is_refused_on_the_form(client, uploader, merchant):
    client.force_login(uploader)
    (payment,) = captured_payments(merchant, 1)
    content = f"payment_id,amount,reason\n{payment.id},1.00,x\n".encode()
    upload(client, content)

    again = upload(client, content, name="again.csv")

    assert again.status_code == 200 and "REFUND_FILE_DUPLICATE" in again.content.decode()
    assert RefundFile.objects.count() == 1 and Refund.objects.count() == 1


def test_a_file_over_the_limit_is_refused_on_the_form(client, uploader, monkeypatch):
    client.force_login(uploader)
    monkeypatch.setattr(admin_files, "MAX_FILE_BYTES", 50)

    response = upload(client, b"payment_id,amount,reason\n" + b"x" * 60)

    assert response.context["form"].errors["file"][0].startswith("The file has 85 bytes")
    assert not RefundFile.objects.exists()


# --- The refund's page: its actions as buttons, its retry links ---------------------------------------


def page(client, refund):
    return client.get(reverse("admin:refunds_refund_change", args=[refund.pk]))


def buttons(client, refund) -> list[str]:
    return [b["name"] for b in page(client, refund).context["refund_actions"]]


def press(client, refund, action: str, **data):
    return client.post(reverse("admin:refunds_refund_act", args=[refund.pk, action]), data, follow=True)


def test_the_refund_page_offers_the_actions_its_state_allows_to_staff_who_may_take_them(officer, payment):
    failed, pending, flagged = failed_refund(payment), refund_create(payment_id=payment.id, amount=Decimal("1.00")), flagged_refund(payment)

    assert buttons(officer, failed) == ["retry_failed"]
    assert buttons(officer, pending) == ["cancel_pending"]
    assert buttons(officer, flagged) == ["cancel_pending", "restart_flagged"]
    assert 'id="refund-retry_failed"' in page(officer, failed).content.decode()


def test_staff_without_the_permissions_get_no_button_and_cannot_post_one(client, django_user_model, payment):
    failed = failed_refund(payment)
    client.force_login(staff_with(django_user_model, "viewer", "view_refund", "view_payment"))

    assert buttons(client, failed) == []
    assert client.post(reverse("admin:refunds_refund_act", args=[failed.pk, "retry_failed"])).status_code == 403
    assert Refund.objects.count() == 1


def test_an_action_is_taken_by_post_only(officer, payment):
    failed = failed_refund(payment)
    assert officer.get(reverse("admin:refunds_refund_act", args=[failed.pk, "retry_failed"])).status_code == 405
    assert officer.post(reverse("admin:refunds_refund_act", args=["ref_nope", "retry_failed"])).status_code == 404


def test_retry_from_the_page_links_the_failed_refund_and_its_retry_both_ways(officer, payment):
    failed = failed_refund(payment)

    response = press(officer, failed, "retry_failed")

    new = Refund.objects.exclude(pk=failed.pk).get()
    assert response.redirect_chain[-1][0] == reverse("admin:refunds_refund_change", args=[failed.pk])
    assert any(text.startswith(f"Refund {failed.pk} retried as") for text in told(response))
    assert response.context["refund_actions"] == []  # retried once
    assert f'Retried as <a href="{reverse("admin:refunds_refund_change", args=[new.pk])}">{new.pk}</a>' in (
        response.content.decode()
    )
    assert f'Retry of <a href="{reverse("admin:refunds_refund_change", args=[failed.pk])}">{failed.pk}</a>' in (
        page(officer, new).content.decode()
    )


def test_action_messages_start_with_a_word_not_the_refund_id(officer, payment):
    """The admin capitalises a message's first letter: 'Ref_01…' would misspell the id."""
    failed = failed_refund(payment)
    act(officer, "retry_failed", [failed])

    again = press(officer, failed, "retry_failed")

    assert [text.split(" ", 2)[:2] for text in told(again)] == [["Refund", failed.pk]]
    assert "REFUND_ALREADY_RETRIED" in told(again)[0]


def test_cancel_from_the_page_asks_for_its_reason_first(officer, payment):
    pending = refund_create(payment_id=payment.id, amount=Decimal("2.00"))

    confirmation = press(officer, pending, "cancel_pending")
    assert confirmation.templates[0].name == "admin/refunds/refund/cancel_confirmation.html"
    assert Refund.objects.get(pk=pending.pk).status == RefundStatus.PENDING

    done = press(officer, pending, "cancel_pending", post="yes", reason="customer withdrew")

    assert done.redirect_chain[-1][0] == reverse("admin:refunds_refund_change", args=[pending.pk])
    assert Refund.objects.get(pk=pending.pk).status == RefundStatus.CANCELLED


def test_restart_from_the_page_clears_the_flag(officer, payment):
    flagged = flagged_refund(payment)

    response = press(officer, flagged, "restart_flagged")

    assert not Refund.objects.get(pk=flagged.pk).needs_attention
    assert [b["name"] for b in response.context["refund_actions"]] == ["cancel_pending"]


def test_the_payment_page_lists_each_refund_with_reason_source_and_retry(admin_client, payment):
    failed = failed_refund(payment)
    act(admin_client, "retry_failed", [failed])
    new = Refund.objects.exclude(pk=failed.pk).get()

    response = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))

    (inline,) = [f for f in response.context["inline_admin_formsets"] if f.opts.verbose_name_plural == "refunds"]
    assert [name for name in inline.opts.fields] == [
        "refund_link", "amount_display", "status", "reason", "source", "retries", "created"
    ]
    html = response.content.decode()
    assert f"Retried as <a href=\"{reverse('admin:refunds_refund_change', args=[new.pk])}\">" in html
    assert f"Retry of <a href=\"{reverse('admin:refunds_refund_change', args=[failed.pk])}\">" in html


def test_labels_are_in_one_case():
    assert RefundSource.labels == ["API", "bulk file", "gateway", "webhook", "system", "staff"]
    assert all(label == label.lower() for label in OperationStatus.labels)


# --- Bulk files: the page and the report ---------------------------------------------------------------


def test_a_rejected_file_counts_the_rows_with_errors_and_its_messages_need_no_formula_guard(client, uploader, merchant):
    client.force_login(uploader)
    payments = captured_payments(merchant, 3)
    content = (
        "payment_id,amount,reason\n"
        f"{payments[0].id},-1,x\n"  # one error
        f"nope,-1,x\n"  # two errors on one row
        f"{payments[2].id},1.00,x\n"
    )

    response = upload(client, content.encode())

    refund_file = RefundFile.objects.get()
    assert (refund_file.errors, refund_file.rows) == (3, 3)
    assert error_summary(refund_file) == "3 errors in 2 of its 3 rows"
    report = list(csv.reader(io.StringIO(client.get(reverse("admin:refunds_refundfile_report", args=[refund_file.pk])).content.decode())))
    assert [line[2] for line in report[1:]] == ["AMOUNT_NOT_POSITIVE", "AMOUNT_NOT_POSITIVE", "INVALID_PAYMENT_ID"]
    assert not [line for line in report[1:] if line[3].startswith("'")]
    html = response.content.decode()
    assert 'id="file-errors"' in html and "&#x27;-1" not in html and "'-1" not in html


def test_a_header_cell_that_is_a_formula_is_guarded_in_the_report_and_shown_plain_on_the_page(client, uploader):
    client.force_login(uploader)

    response = upload(client, b"payment_id,amount,reason,-x\npay_x,1,x,y\n")

    refund_file = RefundFile.objects.get()
    report = list(csv.reader(io.StringIO(client.get(reverse("admin:refunds_refundfile_report", args=[refund_file.pk])).content.decode())))
    assert report[1][:3] == ["1", "'-x", "UNKNOWN_COLUMN"]
    assert "<td>-x</td>" in response.content.decode()


def test_a_header_only_file_is_said_to_be_wrong_as_a_whole(client, uploader):
    client.force_login(uploader)

    response = upload(client, b"payment_id,amount,reason\n")

    refund_file = RefundFile.objects.get()
    assert refund_file.rows == 0 and "NO_ROWS" in error_summary(refund_file) and " 0 row" not in error_summary(refund_file)
    assert any(error_summary(refund_file) in text for text in told(response))


def test_an_accepted_file_shows_no_error_fields_and_counts_its_refunds_in_words(client, uploader, merchant):
    client.force_login(uploader)
    (payment,) = captured_payments(merchant, 1)

    response = upload(client, f"payment_id,amount,reason\n{payment.id},1.00,x\n".encode())

    html = response.content.decode()
    assert "field-error_preview" not in html and "field-error_count" not in html
    assert "the 1 refund of this file" in html
    assert "field-fingerprint" in html and "SHA-256" in html and "Sha256" not in html


def test_the_upload_page_breadcrumbs_name_the_app_then_the_files(client, uploader):
    client.force_login(uploader)

    html = client.get(reverse(UPLOAD)).content.decode()

    crumbs = html.split('<div class="breadcrumbs">')[1].split("</div>")[0]
    links = [reverse("admin:index"), reverse("admin:app_list", args=["refunds"]), reverse("admin:refunds_refundfile_changelist")]
    assert [crumbs.index(f'href="{url}"') for url in links] == sorted(crumbs.index(f'href="{url}"') for url in links)


def test_a_long_file_name_is_cut_in_the_list_with_the_whole_name_as_its_title(viewer, uploader):
    refund_file = refund_file_upload(name="r" * 296 + ".csv", content=b"payment_id,amount,reason\n", user=uploader)
    name = refund_file.name

    html = viewer.get(reverse("admin:refunds_refundfile_changelist")).content.decode()

    assert f'title="{name}"' in html and f">{name}<" not in html
