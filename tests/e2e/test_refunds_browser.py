"""Bulk refund files as staff use them, in a real browser (headless Chromium through Playwright)
against a live server: the upload page, a rejected file with its errors and report, an accepted
one, and the refunds list at laptop width. Screenshots go to var/test-artifacts/ (or
PGI_TEST_ARTIFACTS)."""

from decimal import Decimal

import pytest
from playwright import sync_api

from payments.services import payment_process, payment_validate
from refunds.bulk import refund_file_upload
from refunds.services import refund_create
from tests.refunds.conftest import failed_refund

from .test_admin_staff_browser import LAPTOP, WIDTHS, logged_in_page

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def refund_files(principal, django_user_model, tmp_path):
    """Captured payments, one refund already Pending, and two files to upload: one with errors, one
    right. Made before the browser starts (see test_admin_staff_browser.busy_day)."""
    staff = django_user_model.objects.create_superuser("staff", "staff@example.com", "correct-horse-battery")
    payments = []
    for amount, currency in [("100.00", "USD"), ("250.00", "USD"), ("12000", "JPY")]:
        draft = payment_validate(
            principal=principal, amount=Decimal(amount), currency=currency, from_account="account123", to_merchant=None
        )
        payments.append(payment_process(draft=draft, principal=principal))
    usd, usd_2, jpy = payments
    refund_create(payment_id=usd.id, amount=Decimal("60.00"), reason="partial return")
    # A rejected file with a very long name: the files list must still fit a laptop.
    refund_file_upload(name="returns-" + "very-long-name-" * 20 + ".csv", content=b"payment_id,amount,reason\n", user=staff)
    bad = tmp_path / "returns-december.csv"
    bad.write_text(
        "payment_id,amount,reason,idempotency_key\n"
        f"{usd.id},50.00,damaged in transit,ret-0001\n"  # 60.00 already pending: 40.00 remains
        f"{usd_2.id},12.345,order cancelled,ret-0002\n"
        f"{jpy.id},500.5,wrong size,ret-0003\n"
        f"pay_{'0' * 26},10.00,unknown,ret-0004\n"
        f"{usd_2.id},10.00,duplicate key,ret-0002\n"
    )
    good = tmp_path / "returns-december-fixed.csv"
    good.write_text(
        "payment_id,amount,reason,idempotency_key\n"
        f"{usd.id},40.00,damaged in transit,ret-0001\n"
        f"{usd_2.id},12.35,order cancelled,ret-0002\n"
        f"{jpy.id},500,wrong size,ret-0003\n"
    )
    return bad, good


def test_a_rejected_file_shows_its_errors_and_the_corrected_one_is_accepted(
    live_server, plain_static, refund_files, browser, artifacts
):
    bad, good = refund_files
    page = logged_in_page(browser, live_server)

    page.goto(f"{live_server.url}/admin/refunds/refundfile/add/")
    sync_api.expect(page.locator("#file-format")).to_be_visible()
    assert page.locator(".breadcrumbs a").all_text_contents() == ["Home", "Refunds", "Refund files"]
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-refund-file-upload.png", full_page=True)

    page.set_input_files("#id_file", str(bad))
    page.click("#refund-file-form input[type=submit]")
    errors = page.locator("#file-errors tbody tr")
    sync_api.expect(errors).to_have_count(5)
    sync_api.expect(page.locator(".messagelist .error")).to_contain_text("Rejected returns-december.csv: 5 errors in 5 of its 5 rows")
    for code in ("REFUND_EXCEEDS_AVAILABLE", "AMOUNT_PRECISION", "PAYMENT_NOT_FOUND", "DUPLICATE_KEY_IN_FILE"):
        sync_api.expect(page.locator("#file-errors")).to_contain_text(code)
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-refund-file-rejected.png", full_page=True)
    with page.expect_download() as download:
        page.click("#download-report")
    report = download.value.path().read_text()
    assert report.splitlines()[0] == '"row","column","code","error"'
    assert len(report.splitlines()) == 6

    page.goto(f"{live_server.url}/admin/refunds/refundfile/add/")
    page.set_input_files("#id_file", str(good))
    page.click("#refund-file-form input[type=submit]")
    sync_api.expect(page.locator(".messagelist .success")).to_contain_text(
        "Accepted returns-december-fixed.csv: 3 refunds"
    )
    sync_api.expect(page.locator("div.field-totals")).to_contain_text("500 JPY, 52.35 USD")
    sync_api.expect(page.locator("div.field-error_preview")).to_have_count(0)
    page.screenshot(path=artifacts / "admin-refund-file-accepted.png", full_page=True)

    page.click("div.field-refunds_link a")
    sync_api.expect(page.locator("#result_list tbody tr")).to_have_count(3)
    widths = page.evaluate(WIDTHS)
    page.screenshot(path=artifacts / "admin-list-refunds-refund.png", full_page=True)
    assert [name for name, right in widths["headers"] if right > min(widths["box"], LAPTOP["width"])] == [], widths
    assert widths["page"] <= LAPTOP["width"]

    page.goto(f"{live_server.url}/admin/refunds/refundfile/")
    sync_api.expect(page.locator("#result_list tbody tr")).to_have_count(3)
    widths = page.evaluate(WIDTHS)
    page.screenshot(path=artifacts / "admin-list-refunds-refundfile.png", full_page=True)
    assert [name for name, right in widths["headers"] if right > min(widths["box"], LAPTOP["width"])] == [], widths

    page.click("#result_list tbody tr:last-child th a")  # the file with the long name
    sync_api.expect(page.locator("div.field-error_count")).to_contain_text("NO_ROWS")
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-refund-file-long-name.png", full_page=True)


@pytest.fixture
def failed(principal, django_user_model):
    """A captured payment with a Failed refund, made before the browser starts."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", "correct-horse-battery")
    draft = payment_validate(
        principal=principal, amount=Decimal("80.00"), currency="USD", from_account="account123", to_merchant=None
    )
    payment = payment_process(draft=draft, principal=principal)
    return failed_refund(payment)


def test_a_failed_refund_is_retried_from_its_page_and_the_payment_lists_both(
    live_server, plain_static, failed, browser, artifacts
):
    page = logged_in_page(browser, live_server)

    page.goto(f"{live_server.url}/admin/refunds/refund/{failed.pk}/change/")
    assert page.locator(".object-tools button").all_text_contents() == ["Retry as a new refund"]
    page.screenshot(path=artifacts / "admin-refund-failed.png", full_page=True)

    page.click("#refund-retry_failed")
    sync_api.expect(page.locator(".messagelist .success")).to_contain_text(f"Refund {failed.pk} retried as ref_")
    sync_api.expect(page.locator("div.field-retries")).to_contain_text("Retried as ref_")
    sync_api.expect(page.locator(".object-tools button")).to_have_count(0)
    page.screenshot(path=artifacts / "admin-refund-retried.png", full_page=True)

    page.click("div.field-retries a")
    sync_api.expect(page.locator("div.field-retries")).to_contain_text(f"Retry of {failed.pk}")

    page.goto(f"{live_server.url}/admin/payments/payment/{failed.payment_id}/change/")
    sync_api.expect(page.locator("#refunds-group tbody tr.has_original")).to_have_count(2)
    sync_api.expect(page.locator("#refunds-group td.original p").first).to_be_hidden()
    sync_api.expect(page.locator("#refunds-group")).to_contain_text("Retried as")
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-payment-refunds.png", full_page=True)

    page.goto(f"{live_server.url}/admin/refunds/refund/")
    sources = page.locator("#changelist-filter details:has(summary:text-is('By source')) li a").all_text_contents()
    assert sources == ["All", "API", "bulk file", "gateway", "webhook", "system", "staff"], sources
