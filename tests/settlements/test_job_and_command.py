"""The beat job (`settle-daily`, its cut-off from its schedule), `manage.py settle`, and the
SETTLEMENT_COMPLETED event in the outbox."""

import datetime as dt
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from pgi.events.models import OutboxEvent
from settlements.models import SettlementBatch, SettlementLine
from settlements.services import settlement_cutoff_latest
from settlements.tasks import settlements_settle
from tests.events.conftest import assert_valid
from tests.factories import MerchantFactory, captured_payment

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


@pytest.mark.django_db
def test_the_daily_schedule_is_created_by_the_migration():
    task = PeriodicTask.objects.select_related("crontab").get(name="settle-daily")
    assert task.task == "settlements.tasks.settlements_settle" and task.enabled
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == ("0", "0", "UTC")


@pytest.mark.django_db
def test_the_cutoff_is_the_schedules_latest_time_in_its_zone():
    crontab = PeriodicTask.objects.get(name="settle-daily").crontab
    crontab.hour, crontab.minute, crontab.timezone = "18", "30", "Europe/Berlin"
    crontab.save()

    after = dt.datetime(2026, 7, 1, 19, 0, tzinfo=BERLIN)
    before = dt.datetime(2026, 7, 1, 18, 0, tzinfo=BERLIN)

    assert settlement_cutoff_latest(after) == dt.datetime(2026, 7, 1, 18, 30, tzinfo=BERLIN)
    assert settlement_cutoff_latest(before) == dt.datetime(2026, 6, 30, 18, 30, tzinfo=BERLIN)


@pytest.mark.django_db
def test_the_job_settles_up_to_the_latest_cutoff_and_twice_is_once():
    merchant = MerchantFactory(code="shop-j", settlement_iban="DE89370400440532013000")
    cutoff = settlement_cutoff_latest()
    captured_payment(merchant=merchant, amount="10.00", captured_at=cutoff - dt.timedelta(minutes=1))
    captured_payment(merchant=merchant, amount="99.00", captured_at=cutoff + dt.timedelta(seconds=1))

    first = settlements_settle.apply().get()
    second = settlements_settle.apply().get()

    # The rerun finds the pair settled: it counts it, and makes nothing.
    assert (first, second) == ({"batches": 1, "pairs": 1}, {"batches": 0, "pairs": 1})
    batch = SettlementBatch.objects.get()
    assert (batch.cutoff, batch.gross_amount) == (cutoff, Decimal("10.00"))


@pytest.mark.django_db
def test_a_batch_is_published_as_settlement_completed():
    merchant = MerchantFactory(code="shop-e", settlement_iban="DE89370400440532013000")
    cutoff = timezone.now() - dt.timedelta(minutes=5)
    captured_payment(merchant=merchant, amount="12.50", currency="EUR", captured_at=cutoff - dt.timedelta(hours=1))
    OutboxEvent.objects.all().delete()

    call_command("settle", "--cutoff", cutoff.isoformat(), stdout=io.StringIO(), stderr=io.StringIO())

    [row] = OutboxEvent.objects.filter(event_type="SETTLEMENT_COMPLETED")
    message = assert_valid(row)
    batch = SettlementBatch.objects.get()
    assert (row.topic, row.key, message["settlementId"]) == ("payment-events", batch.id, batch.id)
    assert message["details"]["netAmount"] == Decimal("12.50") and message["details"]["merchant"] == "shop-e"


@pytest.mark.django_db
def test_the_command_dry_run_reports_and_writes_nothing_then_settles_one_merchant():
    shop = MerchantFactory(code="shop-c", settlement_iban="DE89370400440532013000")
    other = MerchantFactory(code="shop-d")
    cutoff = timezone.now() - dt.timedelta(minutes=5)
    for merchant in (shop, other):
        captured_payment(merchant=merchant, amount="7.00", captured_at=cutoff - dt.timedelta(hours=1))
    out = io.StringIO()

    call_command("settle", "--cutoff", cutoff.isoformat(), "--dry-run", stdout=out, stderr=io.StringIO())
    assert "shop-c USD: 1 payment(s), 0 refund(s), net 7.00 USD" in out.getvalue()
    assert not SettlementLine.objects.exists()

    out = io.StringIO()
    call_command("settle", "--cutoff", cutoff.isoformat(), "--merchant", "shop-c", stdout=out, stderr=io.StringIO())
    assert "batches created 1," in out.getvalue()
    assert list(SettlementBatch.objects.values_list("merchant__code", flat=True)) == ["shop-c"]


@pytest.mark.django_db
def test_the_command_finds_its_merchants_and_currencies_once():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    merchant = MerchantFactory(code="shop-o", settlement_iban="DE89370400440532013000")
    cutoff = timezone.now() - dt.timedelta(minutes=5)
    captured_payment(merchant=merchant, amount="3.00", captured_at=cutoff - dt.timedelta(hours=1))
    out = io.StringIO()

    with CaptureQueriesContext(connection) as queries:
        call_command("settle", "--cutoff", cutoff.isoformat(), stdout=out, stderr=io.StringIO())

    # The discovery pass (settlement_pairs) is the one query that reads the payments' pairs.
    discovery = [q for q in queries.captured_queries if q["sql"].startswith("SELECT p.merchant_id, p.currency")]
    assert len(discovery) == 1 and "1 merchant/currency pair(s) to settle" in out.getvalue()
    assert "batches created 1," in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--cutoff", "yesterday"], "not an ISO 8601"),
        (["--merchant", "nobody"], "No merchant"),
        (["--merchant", ""], "--merchant is empty"),
        (["--merchant", " "], "--merchant is empty"),
        (["--cutoff", "0001-01-01T00:00:00Z"], "out of range"),
    ],
)
def test_the_command_refuses_what_it_cannot_read(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("settle", *args, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_the_command_refuses_a_future_cutoff_before_printing_a_plan():
    merchant = MerchantFactory(code="shop-f", settlement_iban="DE89370400440532013000")
    captured_payment(merchant=merchant, amount="5.00", captured_at=timezone.now() - dt.timedelta(hours=1))
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    out = io.StringIO()
    with pytest.raises(CommandError, match="future"):
        call_command("settle", "--cutoff", future, stdout=out, stderr=io.StringIO())
    assert out.getvalue() == "" and not SettlementBatch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_cutoff_is_an_error_not_the_default(empty):
    merchant = MerchantFactory(code="shop-g", settlement_iban="DE89370400440532013000")
    captured_payment(merchant=merchant, amount="5.00", captured_at=settlement_cutoff_latest() - dt.timedelta(hours=1))
    out = io.StringIO()
    with pytest.raises(CommandError, match="--cutoff is empty"):
        call_command("settle", "--cutoff", empty, stdout=out, stderr=io.StringIO())
    assert out.getvalue() == "" and not SettlementBatch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("local", ["2026-03-29T02:30:00", "2026-10-25T02:30:00"])
def test_a_local_cutoff_a_daylight_saving_change_skips_or_repeats_is_refused(local):
    crontab = PeriodicTask.objects.get(name="settle-daily").crontab
    crontab.timezone = "Europe/Berlin"
    crontab.save()

    with pytest.raises(CommandError, match="daylight saving"):
        call_command("settle", "--cutoff", local, stdout=io.StringIO(), stderr=io.StringIO())
    # With its offset it is one moment: taken.
    call_command("settle", "--cutoff", local + "+01:00", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_a_rerun_counts_the_settled_pairs_and_a_dry_run_ends_with_its_own_line():
    merchant = MerchantFactory(code="shop-r", settlement_iban="DE89370400440532013000", settlement_bic="COBADEFFXXX")
    cutoff = (timezone.now() - dt.timedelta(minutes=5)).isoformat()
    captured_payment(merchant=merchant, amount="7.00", currency="EUR", captured_at=timezone.now() - dt.timedelta(hours=1))

    def settle(*args) -> str:
        out = io.StringIO()
        call_command("settle", "--cutoff", cutoff, *args, stdout=out, stderr=io.StringIO())
        return out.getvalue()

    dry = settle("--dry-run")
    assert dry.endswith("\n") and dry.splitlines()[-1].startswith("dry run: 1 batch(es) would be made; nothing written")
    assert "batches created 1, already settled or empty 0" in settle()
    # The run that waited on the lock while another settled the cut-off sees what a rerun sees.
    assert "batches created 0, already settled or empty 1" in settle()
    assert "dry run: 0 batch(es) would be made" in settle("--dry-run")


@pytest.mark.django_db
def test_a_full_run_is_recorded_and_the_batch_list_warns_when_the_latest_cutoff_has_none(admin_client, settings):
    from django.urls import reverse

    from settlements.models import SettlementRun
    from settlements.selectors import settlement_run_missing

    cutoff = settlement_cutoff_latest()
    assert settlement_run_missing(cutoff + dt.timedelta(minutes=29)) is None  # not late yet (30 minutes)
    assert settlement_run_missing(cutoff + dt.timedelta(minutes=31)) == cutoff
    settings.PGI_SETTLEMENT = {**settings.PGI_SETTLEMENT, "late_minutes": 0}  # late from the cut-off on
    late = timezone.now()
    page = admin_client.get(reverse("admin:settlements_settlementbatch_changelist"))
    assert b"No settlement run is recorded for the cut-off" in page.content

    settlements_settle.apply().get()  # nothing to settle: the run is recorded all the same

    assert SettlementRun.objects.filter(cutoff=cutoff).exists()
    assert settlement_run_missing(late) is None
    page = admin_client.get(reverse("admin:settlements_settlementbatch_changelist"))
    assert b"No settlement run is recorded" not in page.content


@pytest.mark.django_db
def test_a_rerun_of_the_cutoff_keeps_what_the_first_run_made_on_its_record():
    from settlements.models import SettlementRun

    merchant = MerchantFactory()
    captured_payment(merchant=merchant, amount="10.00", captured_at=timezone.now() - dt.timedelta(days=1, hours=1))
    settlements_settle.apply().get()
    settlements_settle.apply().get()  # beat again, or the message redelivered after a worker died

    assert SettlementBatch.objects.count() == 1
    assert SettlementRun.objects.get(cutoff=settlement_cutoff_latest()).batches_created == 1
