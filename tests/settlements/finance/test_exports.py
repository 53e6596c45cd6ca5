"""CSV exports: streamed from a server-side cursor (memory flat in the number of rows), exact
decimals, and no cell a spreadsheet would run as a formula."""

import csv
import io
import tracemalloc
import types
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from settlements.downloads import csv_cell
from settlements.models import SettlementBatch
from tests.factories import MerchantFactory

from .test_settlements import big_batch

pytestmark = pytest.mark.django_db


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def peak_while_streaming(response) -> tuple[int, int]:
    """(peak traced bytes while the body is produced, bytes produced)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size = sum(len(chunk) for chunk in response.streaming_content)
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


def test_a_batchs_lines_stream_in_constant_memory(finance):
    small = big_batch(8_000)
    small_response = finance.get(reverse("finance:batch-lines-export", args=[small.id]))
    assert isinstance(small_response, StreamingHttpResponse)
    assert isinstance(small_response.streaming_content, types.GeneratorType) or hasattr(small_response.streaming_content, "__next__")
    small_peak, small_size = peak_while_streaming(small_response)

    SettlementBatch.objects.all().delete()
    large = big_batch(80_000)
    large_peak, large_size = peak_while_streaming(finance.get(reverse("finance:batch-lines-export", args=[large.id])))

    assert large_size > 9 * small_size
    # Ten times the rows, about the same memory: rows are fetched a chunk at a time and dropped.
    assert large_peak < small_peak * 2 + 512 * 1024


def test_nothing_is_read_before_the_body_is_sent(finance, django_assert_num_queries):
    batch = big_batch(10)
    url = reverse("finance:batch-lines-export", args=[batch.id])
    # session, user, two permission reads, the batch: the lines come when the body is iterated
    with django_assert_num_queries(5):
        response = finance.get(url)
    assert len(rows_of(response)) == 12  # header, the real payment's line, ten more


def test_statement_amounts_are_exact_decimals_with_the_currencys_digits(finance, batch):
    header, *lines = rows_of(finance.get(reverse("finance:batch-lines-export", args=[batch.id])))

    assert header == ["kind", "payment_id", "refund_id", "carried_batch_id", "amount", "fee", "net", "occurred_at"]
    assert sorted(line[4] for line in lines) == ["0.30", "1.00", "80.00"]
    assert sum(Decimal(line[6]) for line in lines) == Decimal("79.30") == batch.net_amount
    assert any(line[6] == "-1.00" for line in lines)  # a refund's negative net stays a number


def test_the_statement_is_the_admins(finance, batch, admin_client):
    ours = b"".join(finance.get(reverse("finance:batch-lines-export", args=[batch.id])).streaming_content)
    admins = b"".join(admin_client.get(reverse("admin:settlements_settlementbatch_statement", args=[batch.id])).streaming_content)
    assert ours == admins


def test_the_batch_list_exports_every_filtered_batch_not_just_the_page(finance, batch):
    rows = rows_of(finance.get(reverse("finance:batches-export"), {"currency": "EUR"}))
    header, [row] = rows[0], rows[1:]

    assert header[:5] == ["id", "merchant", "currency", "cutoff", "status"]
    assert row[0] == batch.id and row[2] == "EUR" and row[9] == "79.30"
    assert rows_of(finance.get(reverse("finance:batches-export"), {"currency": "USD"})) == [header]


def test_a_bad_filter_exports_nothing(finance, batch):
    response = finance.get(reverse("finance:batches-export"), {"currency": "nope"})
    assert response.status_code == 400 and not response.streaming


@pytest.mark.parametrize("code", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", " =1+1", "\uff1d1+1"])
def test_text_that_a_spreadsheet_would_evaluate_is_exported_as_text(finance, batch, code):
    MerchantFactory._meta.model.objects.filter(pk=batch.merchant_id).update(code=code)

    [_, row] = rows_of(finance.get(reverse("finance:batches-export")))

    assert row[1] == "'" + code


def test_numbers_are_never_escaped_and_text_always_is():
    assert csv_cell(Decimal("-1.00")) == "-1.00"
    assert csv_cell(-3) == "-3"
    assert csv_cell("-3") == "'-3"
    assert csv_cell(None) == ""
