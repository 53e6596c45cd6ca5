"""The staff admin for payments, the simulator's ledger and idempotency records, on real PostgreSQL."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from gateways.models import SimulatorCharge
from payments.models import Payment, PaymentStatus
from payments.services import payment_process, payment_validate
from pgi.api.models import IdempotencyRecord
from tests.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def pay(principal, *, amount="50.00", currency="USD", from_account="account123", reference=""):
    """A payment taken through the real services, so it has its real status history."""
    draft = payment_validate(
        principal=principal,
        amount=Decimal(amount),
        currency=currency,
        from_account=from_account,
        to_merchant=None,
        reference=reference,
    )
    return payment_process(draft=draft, principal=principal)


def changelist(admin_client, **params):
    response = admin_client.get(reverse("admin:payments_payment_changelist"), params)
    assert response.status_code == 200
    return response


def found(admin_client, **params) -> list[Payment]:
    return list(changelist(admin_client, **params).context["cl"].result_list)


def test_payment_changelist_shows_exact_amounts_with_their_currency(admin_client, principal):
    pay(principal, amount="50", currency="USD")
    pay(principal, amount="500", currency="JPY")
    pay(principal, amount="1.5", currency="KWD")

    html = changelist(admin_client).content.decode()

    assert "50.00 USD" in html
    assert "500 JPY" in html
    assert "1.500 KWD" in html
    assert "merchant456" in html


def test_payment_list_is_fast_shaped(admin_client, principal, django_assert_max_num_queries):
    for _ in range(5):
        pay(principal)

    # Session, user, the page, the filters' small lookups: independent of the number of rows.
    with django_assert_max_num_queries(12):
        response = changelist(admin_client)

    assert len(response.context["cl"].result_list) == 5
    assert response.context["cl"].show_full_result_count is False


def test_search_finds_a_payment_by_id(admin_client, principal):
    wanted = pay(principal)
    pay(principal)

    assert found(admin_client, q=wanted.id) == [wanted]
    assert found(admin_client, q=f"  {wanted.id.upper()} ") == [wanted]


def test_search_finds_a_payment_by_reference_account_gateway_reference_and_merchant(admin_client, principal):
    wanted = pay(principal, reference="order-1001", from_account="DE89370400440532013000")
    pay(principal, reference="order-1002")
    other = PaymentFactory(merchant=MerchantFactory(code="shop-x"), reference="x")

    assert found(admin_client, q="order-1001") == [wanted]
    assert found(admin_client, q="de89 3704 0044 0532 0130 00") == [wanted]
    assert found(admin_client, q=wanted.gateway_reference) == [wanted]
    assert found(admin_client, q="shop-x") == [other]
    assert found(admin_client, q="nothing-like-this") == []


def test_filters_by_status_currency_gateway_merchant_and_date(admin_client, principal):
    completed = pay(principal)
    failed = pay(principal, from_account="acct-0002")
    yen = pay(principal, amount="500", currency="JPY")
    elsewhere = PaymentFactory(merchant=MerchantFactory(code="shop-x"), gateway="other", created_at=timezone.now())
    Payment.objects.filter(pk=elsewhere.pk).update(created_at=timezone.now() - timedelta(days=400))
    today = timezone.now()

    assert found(admin_client, status__exact="Failed") == [failed]
    assert found(admin_client, currency="JPY") == [yen]
    assert set(found(admin_client, gateway="simulator")) == {completed, failed, yen}
    assert found(admin_client, merchant__id__exact=elsewhere.merchant_id) == [elsewhere]
    dated = found(admin_client, created_at__year=today.year, created_at__month=today.month, created_at__day=today.day)
    assert set(dated) == {completed, failed, yen}


def test_payment_page_shows_its_status_history_in_order(admin_client, principal):
    payment = pay(principal, from_account="acct-0051")

    response = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))

    assert response.status_code == 200
    formsets = {formset.opts.verbose_name_plural: formset for formset in response.context["inline_admin_formsets"]}
    # Refunds are installed: their inline sits between the history and the attempts.
    assert list(formsets) == ["status history", "refunds", "gateway attempts"]
    history = [form.form.instance for form in formsets["status history"]]
    assert [(h.from_status, h.to_status) for h in history] == [
        ("", "Pending"),
        ("Pending", "Processing"),
        ("Processing", "Failed"),
    ]
    html = response.content.decode()
    assert "Status history" in html
    assert "INSUFFICIENT_FUNDS" in html and "declined" in html
    assert "The account has insufficient funds." in html
    assert html.index("sent to simulator") < html.index("declined")
    [attempt] = [form.form.instance for form in formsets["gateway attempts"]]
    assert (attempt.operation, attempt.gateway, attempt.idempotency_key, attempt.outcome) == (
        "authorize",
        "simulator",
        payment.pk,
        "declined",
    )
    assert "Gateway attempts" in html and f"{attempt.latency_ms} ms" in html


def test_recovery_flag_shows_in_the_list_and_staff_restart_it(admin_client, principal):
    from payments.services.core import payment_note

    flagged = pay(principal, from_account="acct-0408")
    payment_note(
        payment_id=flagged.pk,
        source="system",
        reason="flagged for staff: test",
        needs_attention=True,
        attention_reason="no final answer after 12 looks",
    )
    url = reverse("admin:payments_payment_changelist")

    listed = admin_client.get(url, {"attention": "yes"})
    assert list(listed.context["cl"].result_list) == [flagged]
    page = admin_client.get(reverse("admin:payments_payment_change", args=[flagged.pk])).content.decode()
    assert "no final answer after 12 looks" in page

    response = admin_client.post(
        url, {"action": "restart_recovery", "_selected_action": [flagged.pk]}, follow=True
    )

    assert "Recovery restarted for 1 payment" in response.content.decode()
    flagged.refresh_from_db()
    assert (flagged.needs_attention, flagged.recovery_attempts) == (False, 0)


def test_a_timed_out_payment_shows_why_it_is_still_processing(admin_client, principal):
    payment = pay(principal, from_account="acct-0408")

    html = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()

    assert payment.status == PaymentStatus.PROCESSING
    assert "timed out; outcome unknown" in html


def test_payment_page_has_no_inputs_for_money_or_status(admin_client, principal):
    payment = pay(principal)

    html = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()

    assert "50.00 USD" in html
    for field in ("amount", "currency", "status", "refunded_amount", "merchant", "from_account"):
        assert f'name="{field}"' not in html
    assert 'name="_save"' not in html
    assert 'name="status_changes-0-to_status"' not in html


def test_posting_a_change_to_a_payment_is_refused_and_changes_nothing(admin_client, principal):
    payment = pay(principal)
    before = Payment.objects.values().get(pk=payment.pk)
    history_before = payment.status_changes.count()

    response = admin_client.post(
        reverse("admin:payments_payment_change", args=[payment.pk]),
        {
            "amount": "1.00",
            "currency": "JPY",
            "status": "Refunded",
            "refunded_amount": "50.00",
            "status_changes-TOTAL_FORMS": "0",
            "status_changes-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )

    assert response.status_code == 403
    assert Payment.objects.values().get(pk=payment.pk) == before
    assert payment.status_changes.count() == history_before


def test_payments_cannot_be_added_or_deleted_in_the_admin(admin_client, principal):
    payment = pay(principal)

    assert admin_client.get(reverse("admin:payments_payment_add")).status_code == 403
    assert admin_client.get(reverse("admin:payments_payment_delete", args=[payment.pk])).status_code == 403
    admin_client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "delete_selected", "_selected_action": [payment.pk]},
    )
    assert Payment.objects.filter(pk=payment.pk).exists()


def test_simulator_ledger_is_listed_read_only_and_labelled(admin_client, principal):
    payment = pay(principal, from_account="acct-0002")
    charge = SimulatorCharge.objects.get(idempotency_key=payment.id)

    listing = admin_client.get(reverse("admin:gateways_simulatorcharge_changelist"), {"q": payment.id})
    page = admin_client.get(reverse("admin:gateways_simulatorcharge_change", args=[charge.pk]))

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [charge]
    assert "Simulator ledger" in listing.content.decode()
    assert "pretend gateway" in listing.content.decode()
    assert page.status_code == 200
    assert "50.00 USD" in page.content.decode()
    assert 'name="amount"' not in page.content.decode()
    assert admin_client.get(reverse("admin:gateways_simulatorcharge_add")).status_code == 403


def test_idempotency_records_are_searchable_by_key_and_read_only(admin_client, merchant):
    record = IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key="order-1001",
        request_hash="0" * 64,
        method="POST",
        path="/v1/payments",
        response_status=201,
        response_body='{"id": "pay_x"}',
        lease_expires_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    IdempotencyRecord.objects.create(
        scope=f"m:{merchant.pk}",
        key="order-1002",
        request_hash="1" * 64,
        method="POST",
        path="/v1/payments",
        lease_expires_at=timezone.now() + timedelta(seconds=15),
        expires_at=timezone.now() + timedelta(hours=24),
    )

    listing = admin_client.get(reverse("admin:api_idempotencyrecord_changelist"), {"q": "order-1001"})
    page = admin_client.get(reverse("admin:api_idempotencyrecord_change", args=[record.pk]))

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [record]
    assert page.status_code == 200
    assert "pay_x" in page.content.decode()
    assert 'name="key"' not in page.content.decode()
    assert admin_client.get(reverse("admin:api_idempotencyrecord_add")).status_code == 403
    assert admin_client.get(reverse("admin:api_idempotencyrecord_delete", args=[record.pk])).status_code == 403


def test_admin_index_lists_every_pgi_model(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    for name in (
        "admin:merchants_merchant_changelist",
        "admin:merchants_apikey_changelist",
        "admin:payments_payment_changelist",
        "admin:gateways_simulatorcharge_changelist",
        "admin:api_idempotencyrecord_changelist",
    ):
        assert reverse(name) in html


# --- The admin as bank staff use it ---------------------------------------------------------------


def sections(response) -> list[str]:
    return [section["name"] for section in response.context["app_list"]]


def listed_urls(response) -> set[str]:
    return {entry["admin_url"] for section in response.context["app_list"] for entry in section["models"]}


def test_index_puts_payments_merchants_and_gateways_first_and_engineering_last(admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert sections(response) == [
        "Payments and refunds", "Merchants", "Gateways", "Settlement and reconciliation", "Audit trail", "Engineering"
    ]
    gateways = response.context["app_list"][2]["models"]
    assert [entry["admin_url"] for entry in gateways] == [
        reverse("admin:gateways_status"),
        reverse("admin:gateways_gatewaynotification_changelist"),
    ]
    settlement = [entry["admin_url"] for entry in response.context["app_list"][3]["models"]]
    assert reverse("admin:settlements_settlementbatch_changelist") in settlement
    engineering = {entry["admin_url"] for entry in response.context["app_list"][5]["models"]}
    assert reverse("admin:api_idempotencyrecord_changelist") in engineering
    assert reverse("admin:django_celery_beat_solarschedule_changelist") in engineering
    assert reverse("admin:auth_group_changelist") in engineering


def test_staff_who_are_not_superusers_do_not_see_engineering_models(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("teller", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_payment", "view_merchant", "view_idempotencyrecord", "view_periodictask"]
        )
    )
    client.force_login(staff)

    response = client.get(reverse("admin:index"))
    sidebar = client.get(reverse("admin:payments_payment_changelist")).context["available_apps"]

    assert sections(response) == ["Payments and refunds", "Merchants"]
    assert reverse("admin:api_idempotencyrecord_changelist") not in listed_urls(response)
    assert reverse("admin:django_celery_beat_periodictask_changelist") not in listed_urls(response)
    assert [section["name"] for section in sidebar] == ["Payments and refunds", "Merchants"]


def index_panels(response) -> dict[str, dict]:
    """The index's panels by template: the payments dashboard, the event relay's lag."""
    return {panel["template"]: panel for panel in response.context["panels"]}


def dashboard(response) -> dict:
    return index_panels(response)["admin/payments/dashboard.html"]


def test_index_shows_todays_figures_per_gateway_and_currency(admin_client, merchant):
    now = timezone.now()
    for gateway, currency, amount, status in [
        ("simulator", "USD", "50.00", PaymentStatus.COMPLETED),
        ("simulator", "USD", "0.10", PaymentStatus.COMPLETED),
        ("simulator", "USD", "75.00", PaymentStatus.FAILED),
        ("simulator", "USD", "20.00", PaymentStatus.PROCESSING),
        ("stripe", "JPY", "500", PaymentStatus.COMPLETED),
        ("stripe", "JPY", "1200", PaymentStatus.AUTHORIZED),
    ]:
        PaymentFactory(merchant=merchant, gateway=gateway, currency=currency, amount=Decimal(amount), status=status)
    yesterday = PaymentFactory(merchant=merchant, gateway="stripe", currency="JPY", amount=Decimal("999"))
    Payment.objects.filter(pk=yesterday.pk).update(created_at=now - timedelta(days=1))

    panel = dashboard(admin_client.get(reverse("admin:index")))

    figures = {(row["gateway"], row["currency"]): row for row in panel["figures"]}
    assert list(figures) == [("simulator", "USD"), ("stripe", "JPY")]
    usd, jpy = figures["simulator", "USD"], figures["stripe", "JPY"]
    assert (usd["payments"], usd["accepted"], usd["failed"], usd["open"]) == (4, 2, 1, 1)
    assert usd["success_rate"] == Decimal("66.7")
    assert usd["charged"] == "50.10 USD"
    assert (jpy["payments"], jpy["accepted"], jpy["failed"], jpy["success_rate"]) == (2, 2, 0, Decimal("100.0"))
    assert jpy["charged"] == "500 JPY"  # the authorization holds money but has not charged it
    assert panel["day"] == now.date().isoformat()


def test_index_lists_flagged_payments_and_those_processing_past_their_first_recovery_look(admin_client, merchant):
    now = timezone.now()
    flagged = PaymentFactory(merchant=merchant, flagged=True)
    looked = PaymentFactory(merchant=merchant, processing=True, recovery_attempts=1, next_recovery_at=now + timedelta(minutes=5))
    overdue = PaymentFactory(merchant=merchant, due=True)
    PaymentFactory(merchant=merchant, processing=True)  # its first look is still ahead
    PaymentFactory(merchant=merchant)

    response = admin_client.get(reverse("admin:index"))

    panel = dashboard(response)
    assert [row["payment"] for row in panel["attention"]] == [flagged, looked, overdue]
    assert panel["attention_total"] == 3
    html = response.content.decode()
    assert reverse("admin:payments_payment_change", args=[flagged.pk]) in html
    assert "no final answer after 12 looks" in html


def test_payments_list_totals_each_currency_over_the_filtered_rows(admin_client, merchant):
    for currency, amount, status in [
        ("USD", "50.00", PaymentStatus.COMPLETED),
        ("USD", "0.05", PaymentStatus.COMPLETED),
        ("USD", "75.00", PaymentStatus.FAILED),
        ("JPY", "500", PaymentStatus.COMPLETED),
        ("KWD", "1.5", PaymentStatus.FAILED),
    ]:
        PaymentFactory(merchant=merchant, currency=currency, amount=Decimal(amount), status=status)

    everything = changelist(admin_client).context["currency_totals"]
    completed = changelist(admin_client, status__exact="Completed").context["currency_totals"]

    assert [(row["currency"], row["count"], row["total"]) for row in everything] == [
        ("JPY", 1, "500 JPY"),
        ("KWD", 1, "1.500 KWD"),
        ("USD", 3, "125.05 USD"),
    ]
    assert [(row["currency"], row["count"], row["total"]) for row in completed] == [
        ("JPY", 1, "500 JPY"),
        ("USD", 2, "50.05 USD"),
    ]
    assert 'id="currency-totals"' in changelist(admin_client).content.decode()


def test_csv_export_holds_exactly_the_filtered_rows_as_exact_text(admin_client, merchant):
    yen = PaymentFactory(merchant=merchant, currency="JPY", amount=Decimal("500"), reference="=HYPERLINK(\"x\")")
    dollars = PaymentFactory(
        merchant=merchant, currency="USD", amount=Decimal("50"), reference="+1-555", status=PaymentStatus.FAILED
    )
    PaymentFactory(merchant=merchant, currency="EUR", amount=Decimal("9.99"), status=PaymentStatus.FAILED)
    PaymentFactory(merchant=merchant, currency="JPY", amount=Decimal("7"), status=PaymentStatus.FAILED)

    listed = changelist(admin_client, currency="JPY", status__exact="Completed")
    response = admin_client.get(listed.context["export_url"])
    usd = admin_client.get(reverse("admin:payments_payment_export"), {"q": dollars.id})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["id"] for row in rows] == [p.id for p in listed.context["cl"].result_list] == [yen.id]
    assert (rows[0]["amount"], rows[0]["currency"], rows[0]["refunded_amount"]) == ("500", "JPY", "0")
    assert rows[0]["reference"] == "'=HYPERLINK(\"x\")"
    assert rows[0]["created_at"] == yen.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    [usd_row] = list(csv.DictReader(io.StringIO(b"".join(usd.streaming_content).decode())))
    assert (usd_row["id"], usd_row["amount"], usd_row["reference"]) == (dollars.id, "50.00", "'+1-555")


def test_csv_export_needs_staff(client):
    response = client.get(reverse("admin:payments_payment_export"))

    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_attention_column_is_blank_on_healthy_rows_and_marked_on_flagged_ones(admin_client, merchant):
    PaymentFactory(merchant=merchant)
    PaymentFactory(merchant=merchant, status=PaymentStatus.FAILED)
    PaymentFactory(merchant=merchant, needs_attention=True, attention_reason="contradicting answers")

    html = changelist(admin_client).content.decode()

    cells = re.findall(r'<td class="field-attention">(.*?)</td>', html, re.S)
    assert len(cells) == 3
    flag = '<span class="pgi-flag" title="contradicting answers">Flagged</span>'
    assert sorted(cell.strip() for cell in cells) == ["", "", flag]
    assert "icon-no.svg" not in html and "icon-yes.svg" not in html


def test_payment_page_says_staff_must_look_only_on_a_flagged_payment(admin_client, merchant):
    healthy = PaymentFactory(merchant=merchant)
    flagged = PaymentFactory(merchant=merchant, flagged=True)

    healthy_page = admin_client.get(reverse("admin:payments_payment_change", args=[healthy.pk])).content.decode()
    flagged_page = admin_client.get(reverse("admin:payments_payment_change", args=[flagged.pk])).content.decode()

    assert "staff must look" not in healthy_page.lower()
    assert "pgi-flag" not in healthy_page
    assert "Staff must look: no final answer after 12 looks" in flagged_page


@pytest.mark.parametrize(
    ("code", "kind"),
    [("NO_FINAL_ANSWER", "ends when the gateway answers"), ("AMOUNT_MISMATCH", "stays until staff clear it")],
)
def test_payment_page_says_which_kind_of_flag_it_is(admin_client, merchant, code, kind):
    flagged = PaymentFactory(merchant=merchant, flagged=True, attention_reason="why", attention_code=code)

    page = admin_client.get(reverse("admin:payments_payment_change", args=[flagged.pk])).content.decode()

    assert f"Staff must look: why ({code}; {kind})" in page


def test_status_filter_offers_only_statuses_a_payment_can_reach(admin_client):
    response = changelist(admin_client)

    [status_filter] = [spec for spec in response.context["cl"].filter_specs if spec.title == "status"]
    offered = [value for value, _ in status_filter.lookup_choices]
    # Refunds are installed: a payment can now be partly or wholly refunded.
    assert offered == ["Pending", "Processing", "Authorized", "Completed", "Failed", "Cancelled", "PartiallyRefunded", "Refunded"]


def test_lists_and_pages_write_instants_as_iso_8601_utc(admin_client, merchant):
    payment = PaymentFactory(merchant=merchant)
    Payment.objects.filter(pk=payment.pk).update(created_at="2026-12-01T22:14:54.123456Z")

    payments = changelist(admin_client).content.decode()
    merchants = admin_client.get(reverse("admin:merchants_merchant_changelist")).content.decode()
    page = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()

    assert "2026-12-01T22:14:54Z" in payments
    assert "2026-12-01T22:14:54Z" in page
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", merchants)
    assert not re.search(r"(a|p)\.m\.", payments + merchants + page)


def test_an_idempotency_record_shows_its_lease_and_links_the_payment_it_created(admin_client, principal):
    payment = pay(principal)
    lapsed = IdempotencyRecord.objects.create(
        scope=f"m:{principal.merchant.pk}",
        key="order-2001",
        request_hash="2" * 64,
        method="POST",
        path="/v1/payments",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        linked_type=ContentType.objects.get_for_model(Payment),
        linked_id=payment.id,
        expires_at=timezone.now() + timedelta(hours=24),
    )
    running = IdempotencyRecord.objects.create(
        scope=f"m:{principal.merchant.pk}",
        key="order-2002",
        request_hash="3" * 64,
        method="POST",
        path="/v1/payments",
        lease_expires_at=timezone.now() + timedelta(seconds=15),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    url = reverse("admin:api_idempotencyrecord_changelist")

    page = admin_client.get(reverse("admin:api_idempotencyrecord_change", args=[lapsed.pk])).content.decode()

    assert reverse("admin:payments_payment_change", args=[payment.id]) in page
    assert "lapsed: answers from the linked object" in page
    assert 'name="lease_expires_at"' not in page and 'name="linked_id"' not in page
    assert list(admin_client.get(url, {"state": "lapsed"}).context["cl"].result_list) == [lapsed]
    assert list(admin_client.get(url, {"state": "running"}).context["cl"].result_list) == [running]


def test_csv_export_quotes_every_cell_so_a_semicolon_never_starts_a_formula_cell(admin_client, merchant):
    payment = PaymentFactory(merchant=merchant, reference="x;=1+2")

    export = admin_client.get(reverse("admin:payments_payment_export"), {"q": payment.id})
    text = b"".join(export.streaming_content).decode()

    assert '"x;=1+2"' in text
    assert all(line.startswith('"') for line in text.splitlines())
