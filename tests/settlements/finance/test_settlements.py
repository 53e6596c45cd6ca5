"""Settlement pages: the batch list with filters and pages, a batch with its lines a page at a time
and its payout files (the admin's bytes), all in a fixed number of queries."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from settlements.models import BatchStatus, SettlementBatch
from settlements.services import settlement_run
from tests.factories import MerchantFactory, captured_payment

from .conftest import CUTOFF

pytestmark = pytest.mark.django_db

BATCHES = reverse("finance:batches")


@pytest.fixture
def many_batches():
    """Three merchants x two currencies x nine daily cut-offs: 54 batches."""
    merchants = [MerchantFactory(code=f"shop-{i}", settlement_iban="DE89370400440532013000") for i in range(3)]
    start = (timezone.now() - dt.timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(9):
        cutoff = start + dt.timedelta(days=day + 1)
        for merchant in merchants:
            for currency in ("EUR", "USD"):
                captured_payment(merchant=merchant, amount="10.00", currency=currency, captured_at=cutoff - dt.timedelta(hours=1))
        settlement_run(cutoff=cutoff)
    assert SettlementBatch.objects.count() == 54
    return start


def ids_on(response) -> list[str]:
    return [b.id for b in response.context["page"].object_list]


def test_the_list_shows_the_newest_cut_off_first_fifty_a_page(finance, many_batches):
    first = finance.get(BATCHES)
    second = finance.get(BATCHES + "?page=2")

    assert first.status_code == 200
    assert len(ids_on(first)) == 50 and len(ids_on(second)) == 4
    assert ids_on(first)[0] == SettlementBatch.objects.order_by("-cutoff", "-id").first().id
    assert b"Page 1 of 2" in first.content
    assert set(ids_on(first)).isdisjoint(ids_on(second))


def test_filters_combine_and_survive_paging(finance, many_batches):
    day = (many_batches + dt.timedelta(days=3)).date()
    response = finance.get(BATCHES, {"merchant": "shop-1", "currency": "eur", "cutoff_from": day, "cutoff_to": day})

    [only] = response.context["page"].object_list
    assert (only.merchant.code, only.currency, only.cutoff.date()) == ("shop-1", "EUR", day)

    held = SettlementBatch.objects.filter(merchant__code="shop-2", currency="USD").first()
    SettlementBatch.objects.filter(pk=held.pk).update(status=BatchStatus.HELD)
    assert ids_on(finance.get(BATCHES, {"status": "held"})) == [held.id]


def test_page_links_keep_the_filters(finance, many_batches):
    response = finance.get(BATCHES, {"currency": "USD"})
    assert response.context["filters_query"] == "currency=USD"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"status": "lost"}, "status"),
        ({"cutoff_from": "yesterday"}, "cutoff_from"),
        ({"cutoff_from": "2026-12-02", "cutoff_to": "2026-12-01"}, "cutoff_to"),
    ],
)
def test_a_bad_filter_is_a_form_error_and_lists_nothing(finance, many_batches, params, field):
    response = finance.get(BATCHES, params)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert response.context["page"] is None
    assert f'id="id_{field}-errors"'.encode() in response.content


def test_the_list_is_a_fixed_number_of_queries_whatever_the_page_holds(finance, many_batches, django_assert_num_queries):
    # session, user, two permission reads; the count and the page (merchants joined)
    with django_assert_num_queries(6):
        finance.get(BATCHES)
    with django_assert_num_queries(6):
        finance.get(BATCHES, {"currency": "EUR", "page": 2})


def test_a_batch_shows_its_totals_lines_and_payout_files(finance, batch):
    response = finance.get(reverse("finance:batch", args=[batch.id]))
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="batch-net">79.30 EUR<' in html
    assert len(response.context["lines"]) == 3
    assert [f.kind for f in response.context["files"]] == ["csv", "pain001"]
    assert reverse("finance:payout-file", args=[batch.id, "pain001"]) in html


def test_a_batch_page_is_a_fixed_number_of_queries(finance, batch, django_assert_num_queries):
    # session, user, two permission reads; the batch with its merchant, its files, its history, its lines
    with django_assert_num_queries(8):
        finance.get(reverse("finance:batch", args=[batch.id]))


def test_payout_files_are_the_bytes_the_admin_serves(finance, batch, admin_client):
    for kind in ("csv", "pain001"):
        ours = finance.get(reverse("finance:payout-file", args=[batch.id, kind]))
        admins = admin_client.get(reverse("admin:settlements_settlementbatch_file", args=[batch.id, kind]))

        assert ours.status_code == 200
        assert ours.content == admins.content and ours.content == bytes(batch.payout_files.get(kind=kind).content)
        assert ours["X-Content-SHA256"] == admins["X-Content-SHA256"]
        assert ours["Content-Disposition"] == admins["Content-Disposition"]


def test_unknown_batches_and_files_are_not_found(finance, batch):
    assert finance.get(reverse("finance:batch", args=["stl_nope"])).status_code == 404
    assert finance.get(reverse("finance:batch", args=["stl_" + "0" * 26])).status_code == 404
    assert finance.get(reverse("finance:payout-file", args=[batch.id, "pdf"])).status_code == 404


def big_batch(lines: int) -> SettlementBatch:
    """A batch with `lines` payment lines written in one INSERT … SELECT (no payments behind them:
    lines have no foreign key to payments in the database)."""
    merchant = MerchantFactory(code="big-shop")
    captured_payment(merchant=merchant, amount="1.00", currency="EUR", captured_at=CUTOFF - dt.timedelta(hours=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO settlements_settlementline (batch_id, kind, payment_id, amount, fee, net, occurred_at)"
            " SELECT %s, 'payment', 'pay_' || lpad(i::text, 26, '0'), 0.10 + i %% 7, 0.01, 0.09 + i %% 7, %s"
            " FROM generate_series(1, %s) AS i",
            [outcome.batch_id, CUTOFF - dt.timedelta(hours=2), lines],
        )
    return SettlementBatch.objects.get(pk=outcome.batch_id)


def test_lines_page_by_line_id_forwards_and_backwards(finance):
    batch = big_batch(120)
    url = reverse("finance:batch", args=[batch.id])
    all_ids = list(batch.lines.order_by("id").values_list("id", flat=True))

    first = finance.get(url)
    second = finance.get(url + "?" + first.context["next_query"])
    last = finance.get(url + "?last=1")
    back = finance.get(url + "?" + last.context["prev_query"])

    assert [line.id for line in first.context["lines"]] == all_ids[:50]
    assert first.context["is_first_page"] and first.context["prev_query"] == ""
    assert [line.id for line in second.context["lines"]] == all_ids[50:100]
    assert [line.id for line in last.context["lines"]] == all_ids[-50:] and last.context["is_last_page"]
    assert [line.id for line in back.context["lines"]] == all_ids[-100:-50]


def test_a_deep_lines_page_costs_the_queries_of_the_first(finance, django_assert_num_queries):
    batch = big_batch(300)
    last_id = batch.lines.order_by("-id").values_list("id", flat=True)[60]
    with django_assert_num_queries(8):
        finance.get(reverse("finance:batch", args=[batch.id]) + f"?after={last_id}")


def test_amounts_show_the_currencys_digits(finance):
    merchant = MerchantFactory(code="kw-shop", settlement_iban="KW81CBKU0000000000001234560101")
    captured_payment(merchant=merchant, amount="1.500", currency="KWD", captured_at=CUTOFF - dt.timedelta(hours=1))
    [outcome] = settlement_run(cutoff=CUTOFF)
    html = finance.get(reverse("finance:batch", args=[outcome.batch_id])).content.decode()
    assert "1.500 KWD" in html
    assert Decimal("1.500") == SettlementBatch.objects.get(pk=outcome.batch_id).gross_amount
