"""Bulk refund files as staff use them, in a real browser (headless Chromium through Playwright)
against a live server: the upload page, a rejected file with its errors and report, an accepted
one, and the refunds list at laptop width. Screenshots go to var/test-artifacts/ (or
PGI_TEST_ARTIFACTS)."""

from decimal import Decimal

import pytest
from playwright import sync_api

from payments.services import payment_process, payment_validate
from refunds.services import refund_create

from .test_admin_staff_browser import LAPTOP, WIDTHS, logged_in_page

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def refund_files(principal, django_user_model, tmp_path):
    """Captured payments, one refund already Pending, and two files to upload: one with errors, one
    right. Made before the browser starts (see test_admin_staff_browser.busy_day)."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", "correct-horse-battery")
    payments = []
    for amount, currency in [("100.00", "USD"), ("250.00", "USD"), ("12000", "JPY")]:
        draft = payment_validate(
            principal=principal, amount=Decimal(amount), currency=currency, from_account="account123", to_merchant=None
        )
        payments.append(payment_process(draft=draft, principal=principal))
    usd, usd_2, jpy = payments
    refund_create(payment_id=usd.id, amount=Decimal("60.00"), reason="partial return")
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
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-refund-file-upload.png", full_page=True)

    page.set_input_files("#id_file", str(bad))
    page.click("#refund-file-form input[type=submit]")
    errors = page.locator("#file-errors tbody tr")
    sync_api.expect(errors).to_have_count(5)
    sync_api.expect(page.locator(".messagelist .error")).to_contain_text("Rejected returns-december.csv: 5 error(s)")
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
        "Accepted returns-december-fixed.csv: 3 refund(s)"
    )
    sync_api.expect(page.locator("div.field-totals")).to_contain_text("500 JPY, 52.35 USD")
    page.screenshot(path=artifacts / "admin-refund-file-accepted.png", full_page=True)

    page.click("div.field-refunds_link a")
    sync_api.expect(page.locator("#result_list tbody tr")).to_have_count(3)
    widths = page.evaluate(WIDTHS)
    page.screenshot(path=artifacts / "admin-list-refunds-refund.png", full_page=True)
    assert [name for name, right in widths["headers"] if right > min(widths["box"], LAPTOP["width"])] == [], widths
    assert widths["page"] <= LAPTOP["width"]

    page.goto(f"{live_server.url}/admin/refunds/refundfile/")
    sync_api.expect(page.locator("#result_list tbody tr")).to_have_count(2)
    widths = page.evaluate(WIDTHS)
    page.screenshot(path=artifacts / "admin-list-refunds-refundfile.png", full_page=True)
    assert [name for name, right in widths["headers"] if right > min(widths["box"], LAPTOP["width"])] == [], widths
