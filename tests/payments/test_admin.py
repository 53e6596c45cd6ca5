"""The staff admin for payments, the simulator's ledger and idempotency records, on real PostgreSQL."""

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
    assert list(formsets) == ["status history", "gateway attempts"]
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
