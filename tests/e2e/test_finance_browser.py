"""The finance web UI in a real browser (Debian's Chromium through Playwright) against a live server:
a member of Finance signs in, reads the dashboard, opens a settlement batch, exports CSV; someone
outside Finance is refused; every page fits a phone. Screenshots go to var/test-artifacts/ (or
PGI_TEST_ARTIFACTS) for people to look at."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from settlements.finance.services import finance_group_ensure
from settlements.models import SettlementBatch
from settlements.services import settlement_run
from tests.factories import (
    MerchantFactory,
    PaymentFactory,
    captured_payment,
    completed_refund,
)

# The day the reconciliation tests craft (tests/settlements/test_reconciliation.py: DAY).
RECONCILED_DAY = dt.date(2026, 11, 30)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 375, "height": 812}
PASSWORD = "correct-horse-battery"
# The shown size (CSS px) of every visible axis label of the charts, once scaled to their box.
AXIS_SIZES = """() => [...document.querySelectorAll('svg.chart text.axis')]
    .filter(t => t.getBoundingClientRect().height > 0)
    .map(t => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getBoundingClientRect().width
              / t.ownerSVGElement.viewBox.baseVal.width)"""
# Every chart whose drawing is wider than its box, or whose box scrolls.
CHARTS_FIT = """() => [...document.querySelectorAll('.chart-box')].filter(box => {
    const svg = box.querySelector('svg');
    return box.scrollWidth > box.clientWidth + 1 || svg.getBoundingClientRect().width > box.clientWidth + 1;
}).map(box => box.querySelector('title').id)"""

# The page's own width and every element wider than the page that is not inside a box that
# scrolls on its own (a wide table does; the page must not; a chart never does: it fits its box).
OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const inScroller = el => el.closest('.table-scroll');
    const wide = [...document.querySelectorAll('body *')].filter(el => {
        const r = el.getBoundingClientRect();
        return r.right > width + 1 && !inScroller(el);
    }).map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
    return {page: document.documentElement.scrollWidth, width, wide};
}"""


@pytest.fixture
def finance_books(django_user_model):
    """A month of payments on three gateways, settled batches (one held), a finance user and a
    member of staff outside Finance. Made before the browser starts."""
    fiona = django_user_model.objects.create_user("fiona", "fiona@bank.example", PASSWORD)
    fiona.groups.add(finance_group_ensure())  # a transactional test's flush empties the migration's rows
    django_user_model.objects.create_user("sam", "sam@bank.example", PASSWORD, is_staff=True)
    now = timezone.now()
    shops = [
        MerchantFactory(code=code, name=name, settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
        for code, name in [("northwind-eu", "Northwind Trading Europe GmbH"), ("contoso-retail", "Contoso Retail Ltd")]
    ]
    cutoffs = [(now - dt.timedelta(days=back)).replace(hour=0, minute=0, second=0, microsecond=0) for back in (3, 2, 1)]
    for n in range(90):
        back = n % 30
        at = now - dt.timedelta(days=back, minutes=7 * n)
        gateway = ("simulator", "stripe", "adyen")[n % 3]
        if gateway == "simulator" and at.date() == RECONCILED_DAY:  # that day's are reconciled_day's own
            gateway = "stripe"
        currency = ("EUR", "USD", "GBP")[(n // 3) % 3]
        status = PaymentStatus.FAILED if n % 11 == 0 else PaymentStatus.PROCESSING if n % 29 == 0 else PaymentStatus.COMPLETED
        payment = captured_payment(
            merchant=shops[n % 2], amount=f"{10 + (n * 37) % 900}.{n % 100:02d}", currency=currency,
            captured_at=at, gateway=gateway, status=status,
        )
        Payment.objects.filter(pk=payment.pk).update(created_at=at)
        if n % 17 == 0 and status == PaymentStatus.COMPLETED:
            completed_refund(payment=payment, amount="5.00", completed_at=at + dt.timedelta(minutes=1))
    PaymentFactory(merchant=shops[0], amount=Decimal("1.500"), currency="KWD", gateway="stripe")
    for cutoff in cutoffs:
        settlement_run(cutoff=cutoff)
    held = SettlementBatch.objects.order_by("-payment_count").first()
    SettlementBatch.objects.filter(pk=held.pk).update(status="held", status_reason="payee IBAN being checked")
    return SettlementBatch.objects.order_by("-payment_count").first()


def sign_in(browser, live_server, username: str = "fiona", viewport=LAPTOP):
    page = browser.new_page(viewport=viewport, accept_downloads=True)
    page.goto(f"{live_server.url}/finance/")
    assert page.url.startswith(f"{live_server.url}/finance/login?next=")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_finance_signs_in_reads_the_dashboard_opens_a_batch_and_exports_csv(
    live_server, plain_static, finance_books, browser, artifacts
):
    page = sign_in(browser, live_server)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    assert page.url == f"{live_server.url}/finance/"
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.locator("svg.chart-bars rect.bar-accepted").count() > 10
    assert page.locator("#table-window tbody tr").count() >= 9  # three gateways x three currencies
    assert "1.500 KWD" in page.locator("#table-today").inner_text()
    assert "held" in page.locator("#table-outstanding").inner_text()
    assert page.evaluate(CHARTS_FIT) == [], "a chart is wider than its box at 1400 px"
    page.set_viewport_size({"width": 1280, "height": 1000})
    assert page.evaluate(CHARTS_FIT) == [], "a chart is wider than its box at 1280 px"
    page.screenshot(path=artifacts / "finance-dashboard-1280.png", full_page=True)
    assert min(page.evaluate(AXIS_SIZES)) >= 11
    page.set_viewport_size(LAPTOP)
    page.screenshot(path=artifacts / "finance-dashboard.png", full_page=True)

    with page.expect_download() as download:
        page.locator("#window-head ~ a", has_text="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith('"gateway","currency","payments"') and '"KWD"' in text

    page.get_by_role("link", name="Settlements").click()
    page.get_by_label("Payout status").select_option("held")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#batches tbody tr").count() == 1
    page.locator("#batches tbody a").first.click()
    assert page.get_by_role("heading", name="Payout files").is_visible()
    assert page.locator("#lines tbody tr").count() == finance_books.payment_count + finance_books.refund_count
    page.screenshot(path=artifacts / "finance-batch.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV (statement, all lines)").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + finance_books.payment_count + finance_books.refund_count
    with page.expect_download() as download:
        page.locator("ul.files a", has_text="pain.001").click()
    assert b"<CstmrCdtTrfInitn>" in Path(download.value.path()).read_bytes()

    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{live_server.url}/finance/login"
    assert errors == []  # no CSP violation, no missing file


def test_staff_outside_finance_are_refused(live_server, plain_static, finance_books, browser, artifacts):
    page = sign_in(browser, live_server, "sam")

    assert page.locator("#finance-forbidden").is_visible()
    assert "not a member of the Finance group" in page.locator("#finance-forbidden").inner_text()
    response = page.goto(f"{live_server.url}/finance/settlements/")
    assert response.status == 403
    page.screenshot(path=artifacts / "finance-forbidden.png", full_page=True)


def test_every_page_fits_a_phone_without_scrolling_sideways(live_server, plain_static, finance_books, browser, artifacts):
    page = sign_in(browser, live_server, viewport=PHONE)
    for name, path in [
        ("dashboard", "/finance/"),
        ("batches", "/finance/settlements/"),
        ("batch", f"/finance/settlements/{finance_books.id}/"),
    ]:
        page.goto(f"{live_server.url}{path}")
        layout = page.evaluate(OVERFLOW)
        assert layout["page"] <= PHONE["width"], (name, layout)
        assert layout["wide"] == [], (name, layout)
        page.screenshot(path=artifacts / f"finance-phone-{name}.png", full_page=True)
        if name == "dashboard":
            assert page.evaluate(CHARTS_FIT) == [], "a chart is wider than its box at 375 px"
            # The axis labels stay readable once the chart is scaled down to the phone's width.
            sizes = page.evaluate(AXIS_SIZES)
            assert sizes and min(sizes) >= 11, sizes
            # Today's column (the last) is within the screen.
            last = page.evaluate("""() => { const c = [...document.querySelectorAll('#chart-volume-title')][0]
                .closest('svg').querySelectorAll('g.column'); return c[c.length - 1].getBoundingClientRect().right; }""")
            assert 0 < last <= PHONE["width"]
    # The menu and sign-out stay reachable at phone width.
    assert page.get_by_role("link", name="Settlements").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()


def test_keyboard_users_see_where_they_are(live_server, plain_static, finance_books, browser):
    page = sign_in(browser, live_server)
    page.locator("body").press("Tab")
    focused = page.evaluate("[document.activeElement.className, document.activeElement.getBoundingClientRect().left]")
    assert focused[0] == "skip" and focused[1] >= 0  # the skip link shows itself when focused
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("[document.activeElement.textContent, getComputedStyle(document.activeElement).outlineStyle]")
    assert outline[1] not in ("", "none"), outline


@pytest.fixture
def reconciled_day(finance_books, django_user_model):
    """The reconciliation tests' crafted day, uploaded by fiona: every exception category, one overdue."""
    from settlements.reconciliation.models import Category, ReconciliationException
    from settlements.reconciliation.services import reconciliation_report_upload
    from tests.settlements.test_reconciliation import DAY, crafted_day

    assert DAY == RECONCILED_DAY

    day = crafted_day(MerchantFactory(code="merchant456", name="Demo Merchant"))
    run = reconciliation_report_upload(
        gateway="simulator", day=DAY, name="simulator_2026-11-30.csv", content=day["report"],
        user=django_user_model.objects.get(username="fiona"),
    ).run
    ReconciliationException.objects.filter(category=Category.DUPLICATE).update(
        first_seen_at=timezone.now() - dt.timedelta(days=5)
    )
    return run


def test_finance_opens_a_run_filters_resolves_one_and_exports(live_server, plain_static, reconciled_day, browser, artifacts):
    page = sign_in(browser, live_server)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    assert page.locator("#recon-age svg.chart-bars").is_visible()

    page.get_by_role("link", name="Reconciliation").click()
    page.locator("#runs tbody a").first.click()
    assert page.get_by_role("heading", name="simulator · 2026-11-30").is_visible()
    assert page.locator("#exceptions tbody tr[id^=exception-]").count() == 8
    assert page.locator("#exceptions tbody tr.overdue").count() == 1
    page.screenshot(path=artifacts / "finance-run.png", full_page=True)

    page.get_by_label("Category", exact=True).select_option("amount_mismatch")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#exceptions tbody tr[id^=exception-]").count() == 1
    row = page.locator("#exceptions tbody tr[id^=exception-]").first
    row.locator("input[type=checkbox]").check()
    page.get_by_label("Resolution", exact=True).select_option("adjusted")
    page.get_by_label("Note", exact=True).fill("gateway kept 1.00 as a chargeback fee; booked as an adjustment")
    page.get_by_role("button", name="Resolve").click()

    assert "Resolved 1 exception as adjusted." in page.locator(".alert.success").inner_text()
    assert page.locator("#exceptions tbody tr[id^=exception-]").count() == 0  # the filter stays: no open amount mismatch left
    page.get_by_label("Status", exact=True).select_option("resolved")
    page.get_by_role("button", name="Filter").click()
    assert "fiona" in page.locator("#exceptions tbody tr[id^=exception-]").first.inner_text()

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV (all pages)").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(exported) == 2 and '"adjusted"' in exported[1] and '"fiona"' in exported[1]

    page.get_by_label("Status", exact=True).select_option("open")
    page.get_by_label("Category", exact=True).select_option("")
    page.get_by_role("button", name="Filter").click()
    page.locator("#select-all").check()
    assert page.locator("#exceptions tbody input[name=exception]:checked").count() == 7
    page.screenshot(path=artifacts / "finance-run-selected.png", full_page=True)
    assert errors == []
