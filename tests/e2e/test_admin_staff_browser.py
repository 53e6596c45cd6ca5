"""The admin as bank staff see it on a laptop, in a real browser (headless Chromium through Playwright)
against a live server: the index with the day's figures, and every list at 1400 px without a column
cut off. Screenshots are saved for people to look at, under var/test-artifacts/ (or
PGI_TEST_ARTIFACTS), and their folder is printed."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright import sync_api

from gateways.models import GatewayNotification
from payments.models import Payment, PaymentStatus
from payments.services import payment_process, payment_validate
from pgi.api.models import IdempotencyRecord
from pgi.events.models import OutboxEvent
from pgi.merchants.models import ApiKey
from pgi.merchants.services import api_key_create
from tests.factories import MerchantFactory, PaymentFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1400, "height": 1000}

# The page's width and, for a list, the right edge of every column header and of the box that
# shows the list (it scrolls sideways rather than widen the page), in CSS pixels.
WIDTHS = """() => {
    const box = document.querySelector('#changelist .results');
    return {
        page: document.documentElement.scrollWidth,
        box: box ? Math.floor(box.getBoundingClientRect().right) : null,
        headers: [...document.querySelectorAll('#result_list thead th')].map(
            th => [th.textContent.trim(), Math.ceil(th.getBoundingClientRect().right)]),
    };
}"""


@pytest.fixture
def busy_day(principal, merchant, django_user_model):
    """A day of payments across two gateways and three currencies, some needing staff, with the rows
    of every other list. Made before the browser starts: Playwright's event loop would give the ORM a
    connection of its own that outlives the test and keeps the test database from being dropped."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", "correct-horse-battery")
    for amount, currency, account in [
        ("50.00", "USD", "account123"),
        ("1249.99", "USD", "account123"),
        ("75.00", "USD", "acct-0002"),
        ("19.90", "EUR", "account123"),
        ("500", "JPY", "account123"),
        ("12000", "JPY", "acct-0051"),
        ("1.500", "KWD", "account123"),
    ]:
        draft = payment_validate(
            principal=principal,
            amount=Decimal(amount),
            currency=currency,
            from_account=account,
            to_merchant=None,
            reference="order-2026-12-0001",
        )
        payment_process(draft=draft, principal=principal)
    big_shop = MerchantFactory(code="northwind-trading-eu", name="Northwind Trading Europe GmbH & Co. KG")
    for amount, status in [("1999.00", PaymentStatus.COMPLETED), ("250.00", PaymentStatus.FAILED)]:
        PaymentFactory(merchant=big_shop, gateway="stripe", currency="EUR", amount=Decimal(amount), status=status)
    PaymentFactory(
        merchant=big_shop,
        gateway="stripe",
        currency="EUR",
        amount=Decimal("310.00"),
        status=PaymentStatus.PROCESSING,
        needs_attention=True,
        attention_reason="no final answer after 12 looks",
        attention_code="NO_FINAL_ANSWER",
    )
    PaymentFactory(
        merchant=merchant,
        currency="JPY",
        amount=Decimal("3000"),
        status=PaymentStatus.PROCESSING,
        recovery_attempts=2,
        next_recovery_at=timezone.now() + timedelta(minutes=2),
    )
    for n in range(3):
        api_key, _ = api_key_create(name=f"checkout backend, region {n}", merchant=big_shop)
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now(), last_used_at=timezone.now())
    api_key_create(name="transaction processing system", merchant=None)
    payment = Payment.objects.filter(merchant=merchant, reference="order-2026-12-0001").last()
    GatewayNotification.objects.create(
        gateway="simulator",
        event_id="evt_3f9a1c0b2d4e5f60718293a4b5c6d7e8",
        event_type="payment.authorization.succeeded",
        operation="authorize",
        payment_id=payment.id,
        status="succeeded",
        amount=payment.amount,
        currency=payment.currency,
        outcome="applied",
    )
    IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key="3b7c2f0e-6a51-4d7e-9b1a-0c2d3e4f5a6b",
        request_hash="0" * 64,
        method="POST",
        path="/v1/payments",
        response_status=201,
        response_body="{}",
        lease_expires_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    return payment


def logged_in_page(browser, live_server):
    page = browser.new_page(viewport=LAPTOP)
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    sync_api.expect(page.locator("#site-name")).to_contain_text("PGI administration")
    return page


def test_index_shows_today_and_the_payments_needing_attention(live_server, plain_static, busy_day, browser, artifacts):
    page = logged_in_page(browser, live_server)

    figures = page.locator("#pgi-today tr.pgi-figure")
    sync_api.expect(figures).to_have_count(5)  # simulator EUR, JPY, KWD, USD; stripe EUR
    usd = page.locator('#pgi-today tr[data-gateway="simulator"][data-currency="USD"]')
    sync_api.expect(usd).to_contain_text("1299.99 USD")
    sync_api.expect(usd).to_contain_text("66.7 %")
    sync_api.expect(page.locator("#pgi-attention tr.pgi-attention-row")).to_have_count(2)
    sync_api.expect(page.locator("#pgi-attention")).to_contain_text("no final answer after 12 looks")
    sections = [text.lower() for text in page.locator("#content-related caption").all_inner_texts()]
    assert sections[:3] == ["payments and refunds", "merchants", "gateways"]
    assert sections[-1] == "engineering"
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-index.png", full_page=True)

    page.click("#content-related a:text-is('Gateway status')")
    sync_api.expect(page.locator("#gateway-status")).to_be_visible()
    sync_api.expect(page.locator("#nav-sidebar a[aria-current=page]")).to_have_text("Gateway status")
    page.screenshot(path=artifacts / "admin-gateway-status.png", full_page=True)


@pytest.mark.parametrize(
    "path",
    [
        "payments/payment/",
        "merchants/merchant/",
        "merchants/apikey/",
        "gateways/gatewaynotification/",
        "gateways/simulatorcharge/",
        "api/idempotencyrecord/",
        "events/outboxevent/",
    ],
)
def test_every_list_fits_a_laptop_screen(live_server, plain_static, busy_day, browser, artifacts, path):
    page = logged_in_page(browser, live_server)

    page.goto(f"{live_server.url}/admin/{path}")

    widths = page.evaluate(WIDTHS)
    assert widths["headers"], "no list on the page"
    cut_off = [name for name, right in widths["headers"] if right > min(widths["box"], LAPTOP["width"])]
    page.screenshot(path=artifacts / f"admin-list-{path.strip('/').replace('/', '-')}.png", full_page=True)
    assert cut_off == []
    assert widths["page"] <= LAPTOP["width"]


def test_payments_list_shows_totals_and_marks_only_flagged_rows(
    live_server, plain_static, busy_day, browser, artifacts
):
    page = logged_in_page(browser, live_server)

    page.goto(f"{live_server.url}/admin/payments/payment/")

    sync_api.expect(page.locator('#currency-totals [data-currency="JPY"]')).to_contain_text("15500 JPY")
    sync_api.expect(page.locator("#result_list td.field-attention .pgi-flag")).to_have_count(1)
    sync_api.expect(page.locator("#export-csv")).to_be_visible()
    page.screenshot(path=artifacts / "admin-payments-list.png", full_page=True)

    page.goto(f"{live_server.url}/admin/payments/payment/{busy_day.pk}/change/")
    sync_api.expect(page.locator("h2", has_text="Status history")).to_be_visible()
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-payment.png", full_page=True)


@pytest.fixture
def late_outbox(busy_day):
    """The day's events unpublished (no relay runs), the oldest waiting for four minutes after failed tries."""
    oldest = OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id").first()
    OutboxEvent.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - timedelta(minutes=4),
        attempts=4,
        last_error="KafkaError{code=_MSG_TIMED_OUT,val=-192,str=\"Local: Message timed out\"}",
    )
    return oldest


def test_the_relay_lag_is_red_on_the_index_and_above_the_outbox_when_events_wait_too_long(
    live_server, plain_static, late_outbox, browser, artifacts
):
    page = logged_in_page(browser, live_server)

    lag = page.locator("#pgi-relay #relay-lag")
    sync_api.expect(lag).to_have_attribute("data-late", "yes")
    sync_api.expect(lag).to_contain_text("has waited 4 min")
    sync_api.expect(lag.locator(".pgi-lag-warning")).to_contain_text("Local: Message timed out")
    heading = page.eval_on_selector("#pgi-relay > h2", "e => getComputedStyle(e).backgroundColor")
    today = page.eval_on_selector("#pgi-today > h2", "e => getComputedStyle(e).backgroundColor")
    assert heading != today  # the late panel's heading is red, not the admin's blue
    page.locator("#pgi-relay").screenshot(path=artifacts / "admin-index-relay-lag.png")
    page.screenshot(path=artifacts / "admin-index-relay-late.png", full_page=True)

    page.click("#pgi-relay #relay-lag a:has-text('not published yet')")
    sync_api.expect(page.locator("#changelist #relay-lag")).to_have_attribute("data-late", "yes")
    sync_api.expect(page.locator("#result_list tbody tr").first).to_be_visible()
    assert page.evaluate(WIDTHS)["page"] <= LAPTOP["width"]
    page.screenshot(path=artifacts / "admin-outbox-relay-late.png", full_page=True)
