"""A staff user in a real browser (headless Chromium through Playwright) against a live server:
logs in to the admin, finds a payment by id, opens it and reads its status history; and every kind
of page PGI serves (admin, docs, Swagger UI, Redoc) renders under its Content-Security-Policy
without a single violation. Screenshots go to PGI_TEST_ARTIFACTS (default var/test-artifacts)."""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from playwright import sync_api

from payments.services import payment_process, payment_validate

from .browser import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = os.environ.get("PGI_ADMIN_SCREENSHOT", str(ARTIFACTS / "admin-payment.png"))
# Every violation of the page's Content-Security-Policy, as the browser reports it to the page.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


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
    Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)


class PolicyWatch:
    """One browser page that records CSP violations (page events and console), failed loads and
    each document's Content-Security-Policy header."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.add_init_script(RECORD_CSP_VIOLATIONS)
        self.console: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", lambda m: "Content Security Policy" in m.text and self.console.append(m.text))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        self.page.on(
            "requestfailed",
            lambda r: r.failure != "net::ERR_ABORTED" and self.failed.append(f"failed {r.url}: {r.failure}"),
        )

    def visit(self, url: str, ready, name: str) -> str:
        """Open `url`, wait until `ready(page)` holds, screenshot; the document's CSP header."""
        response = self.page.goto(url)
        assert response.status == 200, f"{url}: {response.status}"
        policy = response.headers.get("content-security-policy", "")
        ready(self.page)
        self.page.wait_for_load_state("networkidle")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=name not in ("swagger-ui", "redoc"))
        violations = self.page.evaluate("window.cspViolations") + self.console
        assert violations == [], f"{url}: {violations}"
        assert self.failed == [], f"{url}: {self.failed}"
        return policy


def test_admin_docs_swagger_ui_and_redoc_render_under_the_content_security_policy(
    live_server, plain_static, declined_payment, browser
):
    watch = PolicyWatch(browser)
    page, base = watch.page, live_server.url
    expect = sync_api.expect

    def signed_in(page):
        page.fill("#id_username", "staff")
        page.fill("#id_password", "correct-horse-battery")
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_contain_text("PGI administration")

    policies = {
        "admin-login": watch.visit(f"{base}/admin/login/", signed_in, "admin-login"),
        "admin-payments": watch.visit(
            f"{base}/admin/payments/payment/",
            lambda p: expect(p.locator("#result_list a", has_text=declined_payment.id)).to_have_count(1),
            "admin-payments",
        ),
        "admin-payment": watch.visit(
            f"{base}/admin/payments/payment/{declined_payment.id}/change/",
            lambda p: expect(p.locator("h2", has_text="Status history")).to_be_visible(),
            "admin-payment",
        ),
        "admin-merchant-add": watch.visit(
            f"{base}/admin/merchants/merchant/add/",
            # The inline formset's "Add another" link is written by the admin's JavaScript.
            lambda p: expect(p.locator(".add-row a").first).to_be_visible(),
            "admin-merchant-add",
        ),
        "admin-login-attempts": watch.visit(
            f"{base}/admin/axes/accessattempt/",
            lambda p: expect(p.locator("#changelist")).to_be_visible(),
            "admin-login-attempts",
        ),
        "docs": watch.visit(
            f"{base}/docs/02-payment-flow/",
            lambda p: expect(p.locator("article h1")).to_have_text("Payment flow"),
            "docs",
        ),
        "swagger-ui": watch.visit(
            f"{base}/v1/schema/swagger",
            lambda p: expect(p.locator(".opblock-summary-path", has_text="/v1/payments").first).to_be_visible(),
            "swagger-ui",
        ),
        "redoc": watch.visit(
            f"{base}/v1/schema/redoc",
            lambda p: expect(p.locator("h1", has_text="Payment Gateway Integration API")).to_be_visible(),
            "redoc",
        ),
    }

    assert all("default-src 'self'" in policy for policy in policies.values()), policies
    # The docs' stylesheet applied (its nonce matched): the header bar has its brand colour.
    page.goto(f"{base}/docs/")
    assert page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor") == "rgb(11, 61, 92)"
    # Swagger UI lists the operations, Redoc its menu.
    page.goto(f"{base}/v1/schema/swagger")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 5
    assert page.evaluate("window.cspViolations") == []


def test_a_locked_out_sign_in_shows_the_lockout_page(live_server, plain_static, declined_payment, browser, settings):
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    answers = []
    page.on("response", lambda r: r.url.endswith("/admin/login/") and r.request.method == "POST" and answers.append(r.status))

    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "not-the-password")
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    sync_api.expect(page.locator("#login-locked-out")).to_be_visible()
    sync_api.expect(page.locator("#site-name")).to_contain_text("PGI administration")
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429, 429]
    assert page.evaluate("window.cspViolations") == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-locked-out.png"))
