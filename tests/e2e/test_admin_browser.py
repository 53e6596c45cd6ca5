"""A staff user in a real browser (headless Chromium through Playwright) against a live server:
logs in to the admin, finds a payment by id, opens it and reads its status history."""

import os
from decimal import Decimal

import pytest
from playwright import sync_api

from payments.services import payment_process, payment_validate

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = os.environ.get("PGI_ADMIN_SCREENSHOT", "/tmp/pgi-admin-payment.png")


@pytest.fixture
def browser():
    # .ci/run installs Debian's chromium; without it this test must fail, not pass silently.
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def plain_static(settings):
    """The live server serves static files through Django's finders, which know the source names,
    not the hashed names of the manifest storage that whitenoise serves in production."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def declined_payment(principal, django_user_model):
    """Made before the browser starts: Playwright's event loop would give the ORM a connection of
    its own that outlives the test and keeps the test database from being dropped."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", "correct-horse-battery")
    draft = payment_validate(
        principal=principal,
        amount=Decimal("50.00"),
        currency="USD",
        from_account="acct-0051",
        to_merchant=None,
        reference="order-1001",
    )
    return payment_process(draft=draft, principal=principal)


def test_staff_finds_a_payment_and_reads_why_it_failed(live_server, plain_static, declined_payment, browser):
    payment = declined_payment
    failed_assets = []

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.on("response", lambda r: r.status >= 400 and failed_assets.append(f"{r.status} {r.url}"))
    # A navigation aborts the previous page's pending loads (net::ERR_ABORTED): not a broken asset.
    page.on(
        "requestfailed",
        lambda r: r.failure != "net::ERR_ABORTED" and failed_assets.append(f"failed {r.url}: {r.failure}"),
    )

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    sync_api.expect(page.locator("#site-name")).to_contain_text("PGI administration")

    page.goto(f"{live_server.url}/admin/payments/payment/")
    page.fill("#searchbar", payment.id)
    page.press("#searchbar", "Enter")
    result_link = page.locator("#result_list a", has_text=payment.id)
    sync_api.expect(result_link).to_have_count(1)
    result_link.click()

    sync_api.expect(page.locator("h2", has_text="Status history")).to_be_visible()
    history = page.locator("#status_changes-group tbody tr.has_original")
    sync_api.expect(history).to_have_count(3)
    sync_api.expect(history.nth(0)).to_contain_text("Pending")
    sync_api.expect(history.nth(1)).to_contain_text("sent to simulator")
    sync_api.expect(history.nth(2)).to_contain_text("INSUFFICIENT_FUNDS")
    attempts = page.locator("#gateway_attempts-group tbody tr.has_original")
    sync_api.expect(attempts).to_have_count(1)
    sync_api.expect(attempts.nth(0)).to_contain_text("declined")
    sync_api.expect(attempts.nth(0)).to_contain_text("INSUFFICIENT_FUNDS")
    sync_api.expect(page.locator(".field-amount_display")).to_contain_text("50.00 USD")
    sync_api.expect(page.locator(".field-failure_message")).to_contain_text("insufficient funds")
    assert page.locator("input[name=amount], select[name=status]").count() == 0

    # The admin's stylesheet really applied: the header has its coloured background.
    header_background = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header_background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert failed_assets == []
    page.screenshot(path=SCREENSHOT, full_page=True)
