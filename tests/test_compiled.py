"""pgi.compiled: a query compiled once reads, with each call's values, the rows the ORM reads."""

import datetime
import json
import uuid
import warnings
import zoneinfo
from decimal import Decimal
from unittest import mock

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, connection, transaction
from django.db.models import JSONField
from hypothesis import given, settings
from hypothesis import strategies as st
from django.db.models import F, Model, Value
from django.db.models.functions import Concat
from django.db.models.signals import post_init
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.translation import gettext_lazy

from payments.models import Payment
from pgi.compiled import CompiledSelect, _json_reader
from pgi.merchants.models import ApiKey
from tests.factories import MerchantFactory, PaymentFactory
from tests.json_values import json_values
from tests.psycopg_commands import commands_sent

pytestmark = pytest.mark.django_db

MERCHANT_MARK = -991_000_001
CURRENCY_MARK = "pgi-test-currency-mark"


def build(merchant_id, currency):
    return (
        Payment.objects.select_related("merchant", "api_key")
        .annotate(label=Concat(F("currency"), Value(":"), F("reference")))
        .filter(merchant_id=merchant_id, currency=currency)
        .order_by("-amount", "id")
    )


def same(ours: Payment, theirs: Payment) -> None:
    fields = [f.attname for f in Payment._meta.concrete_fields]
    assert [getattr(ours, name) for name in fields] == [getattr(theirs, name) for name in fields]
    assert ours.label == theirs.label
    assert ours._state.adding is False and ours._state.db == "default"
    assert Payment.merchant.is_cached(ours) and ours.merchant.code == theirs.merchant.code
    assert Payment.api_key.is_cached(ours) and (ours.api_key is None) == (theirs.api_key is None)


def test_rows_are_the_orms_with_each_calls_values(django_assert_num_queries):
    merchant, other = MerchantFactory(), MerchantFactory()
    key = ApiKey.objects.create(merchant=merchant, prefix="cmp1test0000", key_hash="x" * 64, name="k")
    PaymentFactory(merchant=merchant, amount=Decimal("10.50"), currency="EUR", reference="a", api_key=key)
    PaymentFactory(merchant=merchant, amount=Decimal("99.99"), currency="EUR", reference="")
    PaymentFactory(merchant=merchant, amount=Decimal("5.00"), currency="USD", reference="b")
    PaymentFactory(merchant=other, amount=Decimal("7.00"), currency="EUR", reference="c")
    query = CompiledSelect(build, marks=(MERCHANT_MARK, CURRENCY_MARK))

    for merchant_id, currency in ((merchant.pk, "EUR"), (merchant.pk, "USD"), (other.pk, "EUR"), (other.pk, "JPY")):
        with django_assert_num_queries(1):
            ours = query.rows(merchant_id, currency)
        theirs = list(build(merchant_id, currency))
        assert [p.pk for p in ours] == [p.pk for p in theirs]
        for a, b in zip(ours, theirs):
            same(a, b)
    eur = query.rows(merchant.pk, "EUR")
    assert eur[0].amount == Decimal("99.99") and eur[0].api_key is None and eur[1].api_key == key
    assert eur[0].merchant.payments.model is Payment  # the merchant object is a full one


def test_a_mark_must_occur_once():
    query = CompiledSelect(lambda m: Payment.objects.filter(merchant_id=m) | Payment.objects.filter(api_key_id=m),
                           marks=(MERCHANT_MARK,))
    with pytest.raises(ValueError, match="once"):
        query.rows(1)


def test_values_queries_are_refused():
    query = CompiledSelect(lambda m: Payment.objects.filter(merchant_id=m).values("id"), marks=(MERCHANT_MARK,))
    with pytest.raises(ValueError, match="model rows"):
        query.rows(1)


@pytest.mark.django_db(transaction=True)  # outside the test's own transaction
def test_a_locking_query_needs_a_transaction_as_the_orms_does():
    payment = PaymentFactory()
    query = CompiledSelect(lambda m: Payment.objects.select_for_update().filter(merchant_id=m), marks=(MERCHANT_MARK,))
    with transaction.atomic():
        assert [p.pk for p in query.rows(payment.merchant_id)] == [payment.pk]
    with pytest.raises(TransactionManagementError):
        query.rows(payment.merchant_id)


def columns(row) -> dict:
    skip = {row._meta.pk.attname, "created_at", "updated_at", "event_id", "status_changed_at"}
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if f.attname not in skip}


def test_insert_rows_writes_what_bulk_create_writes(django_assert_num_queries):
    from pgi.compiled import insert_rows
    from pgi.events.models import OutboxEvent
    from payments.models import PaymentStatusChange

    payment = PaymentFactory()
    message = {"event": "PAYMENT_CREATED", "details": {"amount": Decimal("50.10")}, "paymentId": payment.pk}

    def outbox():
        return [OutboxEvent(topic="payment-events", key=payment.pk, event_type="PAYMENT_CREATED", payload=message,
                            body="{}", merchant_id=payment.merchant_id) for _ in range(2)]

    def history():
        return [PaymentStatusChange(payment=payment, from_status="", to_status="Pending", source="api", reason="r")]

    for make in (outbox, history):
        ours, theirs = make(), make()
        with django_assert_num_queries(1):
            insert_rows(ours)
        type(theirs[0]).objects.bulk_create(theirs)
        assert all(row.pk is not None and row._state.adding is False and row._state.db == "default" for row in ours)
        for a, b in zip(ours, theirs):
            stored_a, stored_b = type(a).objects.get(pk=a.pk), type(b).objects.get(pk=b.pk)
            assert columns(stored_a) == columns(stored_b) and stored_a.created_at is not None
    first_outbox = OutboxEvent.objects.order_by("id").first()
    assert first_outbox.payload["details"]["amount"] == Decimal("50.10")


def test_insert_rows_keeps_a_key_made_in_python_and_fills_defaults():
    from pgi.compiled import insert_rows

    merchant = MerchantFactory()
    payment = Payment(merchant=merchant, amount=Decimal("12.34"), currency="USD", from_account="acc", status="Pending",
                      status_changed_at=timezone.now())
    made_in_python = payment.pk
    (same,) = insert_rows([payment])
    assert same is payment and payment.pk == made_in_python and payment.pk.startswith("pay_")
    stored = Payment.objects.get(pk=payment.pk)
    assert stored.amount == Decimal("12.34") and stored.created_at == payment.created_at and stored.metadata == {}


def test_insert_rows_refuses_what_it_cannot_write_as_bulk_create_would():
    from django.db.models.functions import Now

    from pgi.compiled import insert_rows
    from pgi.events.models import OutboxEvent

    with pytest.raises(ValueError, match="primary key"):
        insert_rows([OutboxEvent(id=10**9, topic="t", key="k", event_type="e", payload={}, body="{}"),
                     OutboxEvent(topic="t", key="k", event_type="e", payload={}, body="{}")])
    with pytest.raises(ValueError, match="expressions"):
        insert_rows([OutboxEvent(topic="t", key="k", event_type="e", payload={}, body="{}", sent_at=Now())])
    assert not OutboxEvent.objects.exists()


def test_update_row_writes_what_save_with_update_fields_writes(django_assert_num_queries):
    from pgi.compiled import update_row

    ours, theirs = PaymentFactory(status="Processing"), PaymentFactory(status="Processing")
    for payment in (ours, theirs):
        payment.status, payment.gateway_reference, payment.description = "Completed", "ref-1", "not written"
    before = ours.updated_at
    with django_assert_num_queries(1):
        update_row(ours, ["status", "gateway_reference", "updated_at", "status"])
    theirs.save(update_fields=["status", "gateway_reference", "updated_at"])
    stored_ours, stored_theirs = Payment.objects.get(pk=ours.pk), Payment.objects.get(pk=theirs.pk)
    assert (stored_ours.status, stored_ours.gateway_reference) == (stored_theirs.status, stored_theirs.gateway_reference)
    assert stored_ours.description == "" and stored_ours.updated_at == ours.updated_at > before  # auto_now, as save()


def test_update_row_of_a_row_gone_is_an_error_as_with_save():
    from django.db import DatabaseError

    from pgi.compiled import update_row

    payment = PaymentFactory()
    payment.pk = "pay_00000000000000000000000000"  # a row that is not there
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        update_row(payment, ["status"])
    with pytest.raises(ValueError, match="cannot write"):
        update_row(payment, ["id"])


def _payment_writes(merchant, earlier: Payment, *, status_later: str):
    """Writes as a payment's first commit and its answer make them, through insert_rows and update_row:
    a payment (key made in Python), two history lines and an outbox row (keys made by the database),
    and an earlier payment's new status. Returns the rows inserted."""
    from payments.models import PaymentStatusChange
    from pgi.compiled import insert_rows, update_row
    from pgi.events.models import OutboxEvent

    payment = Payment(merchant=merchant, amount=Decimal("12.34"), currency="USD", from_account="acc",
                      status="Pending", status_changed_at=timezone.now(), metadata={"order": "7"})
    insert_rows([payment])
    history = insert_rows([
        PaymentStatusChange(payment=payment, from_status="", to_status="Pending", source="api", reason="r"),
        PaymentStatusChange(payment=payment, from_status="Pending", to_status="Processing", source="system", reason="s"),
    ])
    events = insert_rows([OutboxEvent(topic="payment-events", key=payment.pk, event_type="PAYMENT_CREATED",
                                      payload={"amount": Decimal("12.34")}, body="{}", merchant_id=merchant.pk)])
    earlier.status = status_later
    update_row(earlier, ["status", "updated_at"])
    return [payment, *history, *events]


def test_writes_together_write_what_the_same_calls_write_one_by_one(django_assert_num_queries):
    from payments.models import PaymentStatusChange
    from pgi.compiled import writes_together
    from pgi.events.models import OutboxEvent

    merchant = MerchantFactory()
    first, second = PaymentFactory(merchant=merchant, status="Processing"), PaymentFactory(merchant=merchant, status="Processing")
    alone = _payment_writes(merchant, first, status_later="Completed")
    with django_assert_num_queries(1), writes_together(savepoint=False):  # inside the test's transaction
        together = _payment_writes(merchant, second, status_later="Completed")
        assert together[1].pk is None  # a key the database makes is set once the statement has run
    assert all(row.pk is not None and row._state.adding is False and row._state.db == "default" for row in together)
    for ours, theirs in zip(together, alone, strict=True):
        stored_ours, stored_theirs = type(ours).objects.get(pk=ours.pk), type(theirs).objects.get(pk=theirs.pk)
        differ = {"payment_id", "key"}  # each names its own payment
        assert {k: v for k, v in columns(stored_ours).items() if k not in differ} == {
            k: v for k, v in columns(stored_theirs).items() if k not in differ}
    history = PaymentStatusChange.objects.filter(payment_id=together[0].pk).order_by("pk")
    assert [(h.pk, h.to_status) for h in history] == [(together[1].pk, "Pending"), (together[2].pk, "Processing")]
    assert OutboxEvent.objects.get(pk=together[3].pk).payload == {"amount": Decimal("12.34")}
    assert Payment.objects.get(pk=second.pk).status == "Completed"


def test_what_a_block_reads_sees_its_writes_first(django_assert_num_queries):
    from pgi.compiled import insert_rows, update_row, writes_together

    merchant = MerchantFactory()
    with django_assert_num_queries(4), writes_together(savepoint=False):
        payment = Payment(merchant=merchant, amount=Decimal("1.00"), currency="USD", from_account="acc",
                          status="Pending", status_changed_at=timezone.now())
        insert_rows([payment])
        assert Payment.objects.get(pk=payment.pk).status == "Pending"  # the INSERT, then this SELECT
        payment.status = "Processing"
        update_row(payment, ["status"])
        payment.status = "Completed"  # the same row again: the first UPDATE goes alone, first
        update_row(payment, ["status"])
    assert Payment.objects.get(pk=payment.pk).status == "Completed"


def test_rolling_back_to_a_savepoint_in_a_block_undoes_its_waiting_writes():
    from pgi.compiled import insert_rows, writes_together

    merchant = MerchantFactory()

    def new_payment(reference):
        return Payment(merchant=merchant, amount=Decimal("1.00"), currency="USD", from_account="acc",
                       status="Pending", status_changed_at=timezone.now(), reference=reference)

    with writes_together(savepoint=False):
        insert_rows([new_payment("kept")])
        with pytest.raises(ValueError), transaction.atomic():
            insert_rows([new_payment("undone")])
            raise ValueError("the nested block fails")
        insert_rows([new_payment("after")])
    assert sorted(Payment.objects.values_list("reference", flat=True)) == ["after", "kept"]


def test_a_row_that_needs_a_waiting_key_sends_the_waiting_writes_first(django_assert_num_queries):
    from payments.models import GatewayOperation
    from pgi.compiled import insert_rows, update_row, writes_together
    from refunds.models import Refund

    payment = PaymentFactory(status="Completed")
    with django_assert_num_queries(3), writes_together(savepoint=False):
        (operation,) = insert_rows([GatewayOperation(payment=payment, kind="refund", amount=Decimal("1.00"),
                                                     idempotency_key="ref_pgi_test_1")])
        assert operation.pk is None
        (refund,) = insert_rows([Refund(payment=payment, merchant_id=payment.merchant_id, operation=operation,
                                        amount=Decimal("1.00"), currency=payment.currency, status="Pending",
                                        status_changed_at=timezone.now(), gateway=payment.gateway)])
        assert operation.pk is not None  # the operation's INSERT went first, alone
        operation.status = "failed"
        update_row(operation, ["status"])  # known, so it waits with the refund: one more statement at the end
        (second,) = insert_rows([GatewayOperation(payment=payment, kind="refund", amount=Decimal("2.00"),
                                                  idempotency_key="ref_pgi_test_2")])
        second.status = "failed"
        update_row(second, ["status"])  # needs its key: the refund, that update and this INSERT go first
    assert Refund.objects.get(pk=refund.pk).operation_id == operation.pk
    assert list(GatewayOperation.objects.filter(payment=payment, kind="refund").order_by("pk").values_list("status", flat=True)) == [
        "failed", "failed"]


@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_block_leaves_nothing_of_it():
    from django.db import DatabaseError, IntegrityError

    from pgi.compiled import insert_rows, update_row, writes_together
    from pgi.events.models import OutboxEvent

    merchant = MerchantFactory()
    existing = PaymentFactory(merchant=merchant, status="Processing")
    twin = OutboxEvent(topic="t", key="k", event_type="e", payload={}, body="{}")
    insert_rows([twin])
    with pytest.raises(IntegrityError), writes_together():
        _payment_writes(merchant, existing, status_later="Failed")
        insert_rows([OutboxEvent(event_id=twin.event_id, topic="t", key="k", event_type="e", payload={}, body="{}")])
    gone = Payment(pk="pay_00000000000000000000000000", merchant=merchant)
    with pytest.raises(DatabaseError, match="did not affect any rows"), writes_together():
        _payment_writes(merchant, existing, status_later="Failed")
        update_row(gone, ["status"])
    assert list(Payment.objects.values_list("pk", "status")) == [(existing.pk, "Processing")]
    assert OutboxEvent.objects.count() == 1
    with writes_together():  # the connection is usable, and the next block writes at once again
        payment, *_ = _payment_writes(merchant, existing, status_later="Failed")
    assert Payment.objects.count() == 2 and Payment.objects.get(pk=existing.pk).status == "Failed"


def test_psycopg_still_has_the_statement_cache_setting_pgi_raises():
    from psycopg import _queries

    assert _queries.MAX_CACHED_STATEMENT_PARAMS >= 128


def test_rows_loaded_without_init_are_what_the_orms_from_db_makes():
    merchant = MerchantFactory()
    PaymentFactory(merchant=merchant, metadata={"order": "7"}, reference="r-1")
    ours = Payment.objects.get(merchant=merchant)
    theirs = Model.from_db.__func__(Payment, "default", [f.attname for f in Payment._meta.concrete_fields],
                                    [getattr(ours, f.attname) for f in Payment._meta.concrete_fields])
    assert type(theirs) is Payment and theirs.__dict__.keys() == ours.__dict__.keys()
    assert {k: v for k, v in ours.__dict__.items() if k != "_state"} == {
        k: v for k, v in theirs.__dict__.items() if k != "_state"
    }
    assert (ours._state.adding, ours._state.db) == (False, "default")
    assert ours.merchant == merchant  # the foreign key reads as it does from __init__
    ours.description = "changed"
    ours.save(update_fields=["description"])
    ours.refresh_from_db()
    assert ours.description == "changed"


def test_a_row_with_deferred_fields_or_a_listened_model_is_loaded_by_the_orm():
    PaymentFactory(reference="r-2")
    deferred = Payment.objects.only("id").get(reference="r-2")
    assert deferred.get_deferred_fields() >= {"amount", "currency"}
    assert deferred.currency == "USD"  # read on access, as the ORM does

    seen = []

    def listener(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(listener, sender=Payment)
    try:
        loaded = Payment.objects.get(reference="r-2")
    finally:
        post_init.disconnect(listener, sender=Payment)
    assert seen == [loaded.pk]


# insert_rows and update_row: the values they send -------------------------------------------

_AWARE = datetime.datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=datetime.UTC)
_SAMPLES = [
    None, "", "abc", "pay_0123456789", 0, 7, -3, 2**40, True, False, 1.5,
    Decimal("50.00"), Decimal("-0.01"), Decimal("1E+3"), Decimal("NaN"), Decimal("Infinity"),
    _AWARE, _AWARE.astimezone(zoneinfo.ZoneInfo("Europe/Paris")), datetime.datetime(2026, 12, 3, 14, 0),
    datetime.date(2026, 12, 3), uuid.UUID("12345678-1234-5678-1234-567812345678"), gettext_lazy("Completed"),
    [], {"a": 1},
]


def _sent(compute):
    """What compute() returns (its value and exact type) or raises, and the warnings it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = compute()
            # psycopg's wrappers (Jsonb, Binary) have no equality of their own: compare what they wrap.
            outcome = ("value", type(value), getattr(value, "obj", value))
        except Exception as error:  # noqa: BLE001 - the two must fail alike
            outcome = ("error", type(error))
    return outcome, [(w.category, str(w.message)) for w in caught]


def _models():
    from django.apps import apps

    return [model for model in apps.get_models() if not model.__module__.startswith("django.")]


@pytest.mark.parametrize("model", _models(), ids=lambda model: model._meta.label)
def test_the_values_sent_are_what_each_fields_own_methods_send(model):
    """For every field of every model of PGI (and those of its libraries) and values of every type,
    `_db_values` with its plan sends what `field.get_db_prep_save(field.pre_save(…))` sends."""
    from django.db import connection

    from pgi.compiled import _db_values, _value_plan

    fixed_now = _AWARE
    checked = 0
    for field in model._meta.local_concrete_fields:
        plan = _value_plan([field], connection)
        for value in _SAMPLES:
            for add in (True, False):
                ours, theirs = model(), model()
                try:
                    setattr(ours, field.attname, value)
                except Exception:  # noqa: BLE001 - a field whose descriptor refuses the value
                    continue
                setattr(theirs, field.attname, value)
                with mock.patch("django.utils.timezone.now", return_value=fixed_now):
                    planned = _sent(lambda: _db_values(ours, plan, add=add, connection=connection)[0])
                    own = _sent(
                        lambda: field.get_db_prep_save(field.pre_save(theirs, add), connection=connection)
                    )
                assert planned == own, (field, value, add)
                left, right = getattr(ours, field.attname), getattr(theirs, field.attname)
                assert left is right or left == right
                checked += 1
    assert checked


def test_the_plan_knows_the_payment_paths_fields():
    """The fields the payment path writes take the plan's way, not the field's methods."""
    from django.db import connection

    from pgi.compiled import _value_plan

    plan = _value_plan(Payment._meta.local_concrete_fields, connection)
    known = {field.name for field, _, kinds in plan if kinds is not None}
    assert {"id", "merchant", "amount", "currency", "from_account", "status", "created_at", "capture"} <= known
    assert "metadata" not in known  # a JSONField: its own methods


def _inserts(merchant, reference: str) -> list[Model]:
    """A payment and its first history line, as a payment's first commit inserts them."""
    from payments.models import PaymentStatusChange
    from pgi.compiled import insert_rows

    payment = Payment(merchant=merchant, amount=Decimal("1.00"), currency="USD", from_account="acc",
                      status="Pending", status_changed_at=timezone.now(), reference=reference)
    insert_rows([payment])
    return [payment, *insert_rows([PaymentStatusChange(payment=payment, from_status="", to_status="Pending",
                                                       source="api", reason="r")])]


@pytest.mark.django_db(transaction=True)
def test_a_transaction_of_one_statement_that_inserts_sends_no_begin_nor_commit():
    from pgi.compiled import writes_together

    merchant = MerchantFactory()
    existing = PaymentFactory(merchant=merchant, status="Processing")
    committed = []
    with commands_sent() as sent, writes_together():
        payment, history = _inserts(merchant, "alone")
        transaction.on_commit(lambda: committed.append(True))
    assert sent == [] and committed == [True]
    assert Payment.objects.get(pk=payment.pk).reference == "alone" and history.pk is not None

    # A block that reads too is a transaction of several statements: BEGIN and COMMIT as always.
    with commands_sent() as sent, writes_together():
        _inserts(merchant, "read")
        assert Payment.objects.filter(reference="read").exists()
    assert sent == ["BEGIN", "COMMIT"]

    # So is one that updates: an update that finds no row is told once the statement has run.
    with commands_sent() as sent, writes_together():
        _payment_writes(merchant, existing, status_later="Completed")
    assert sent == ["BEGIN", "COMMIT"]

    # Inside a transaction already open, the block is a part of it.
    with commands_sent() as sent, transaction.atomic():
        with writes_together():
            _inserts(merchant, "inside")
    assert sent == ["BEGIN", "COMMIT"]

    # A block marked to be rolled back (set_rollback) sends nothing: its writes are undone unsent.
    with commands_sent() as sent, writes_together():
        _inserts(merchant, "rolled back")
        transaction.set_rollback(True)
    assert sent == []
    assert not Payment.objects.filter(reference="rolled back").exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_alone_leaves_nothing_and_the_connection_usable():
    from django.db import IntegrityError, connection

    from pgi.compiled import insert_rows, writes_together
    from pgi.events.models import OutboxEvent

    merchant = MerchantFactory()
    twin = OutboxEvent(topic="t", key="k", event_type="e", payload={}, body="{}")
    insert_rows([twin])
    committed = []
    with commands_sent() as sent, pytest.raises(IntegrityError), writes_together():
        _inserts(merchant, "failed")
        insert_rows([OutboxEvent(event_id=twin.event_id, topic="t", key="k", event_type="e", payload={}, body="{}")])
        transaction.on_commit(lambda: committed.append(True))
    assert sent == [] and committed == []
    assert not Payment.objects.exists() and OutboxEvent.objects.count() == 1
    assert connection.get_autocommit() and connection.connection.autocommit
    with writes_together():
        _inserts(merchant, "next")
    assert list(Payment.objects.values_list("reference", flat=True)) == ["next"]


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_asks_for_an_isolation_level_keeps_its_begin():
    from django.db import connection
    from psycopg import IsolationLevel

    from pgi.compiled import writes_together

    merchant = MerchantFactory()
    connection.ensure_connection()
    connection.connection.isolation_level = IsolationLevel.SERIALIZABLE
    try:
        with commands_sent() as sent, writes_together():
            _inserts(merchant, "serializable")
    finally:
        connection.connection.isolation_level = None
    assert sent == ["BEGIN", "COMMIT"]


# JSON columns read by orjson (pgi.compiled._json_reader): the value json reads, type for type.
JSON_EDGES = [
    "-9223372036854775808", "-9223372036854775809", "9223372036854775807", "18446744073709551615",
    "18446744073709551616", "123456789012345678901234567890", "-0", "-0.0", "1e400", "-1e400", "1e-400",
    "0.1", "1E2", "4.9e-324", "123456789.123456789123456789", '{"a": 1, "a": 2}', '"\\ud83d\\ude00"',
    '{"amount": 50.00, "n": [1, 2.5, -3, null, true, "x"]}', '"' + "1" * 40 + '"',
]


def _read_both(text: str):
    field = Payment._meta.get_field("metadata")
    ours = _json_reader(field.from_db_value)
    assert ours is not field.from_db_value  # the orjson reader is in place
    return ours(text, None, connection), field.from_db_value(text, None, connection)


@pytest.mark.parametrize("text", JSON_EDGES)
def test_a_json_column_reads_as_djangos_reader_reads_it(text):
    ours, theirs = _read_both(text)
    assert repr(ours) == repr(theirs)


json_texts = json_values(st.text()) | st.integers().map(lambda n: [n, {"n": n}])


@settings(max_examples=200, deadline=None)
@given(json_texts)
def test_a_json_column_read_back_from_postgresql_reads_as_djangos_reader_reads_it(value):
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::jsonb", [json.dumps(value, cls=DjangoJSONEncoder)])
            [text] = cursor.fetchone()
    except DataError:  # what jsonb refuses (a NUL in text, a lone surrogate): never stored
        return
    ours, theirs = _read_both(text)
    assert repr(ours) == repr(theirs)


def test_other_converters_are_kept():
    plain = lambda value, expression, connection: value  # noqa: E731
    assert _json_reader(plain) is plain
    decoded = JSONField(decoder=json.JSONDecoder)
    assert _json_reader(decoded.from_db_value) == decoded.from_db_value


def test_a_payments_metadata_is_read_by_a_compiled_select():
    merchant = MerchantFactory()
    payment = PaymentFactory(merchant=merchant, metadata={"order": "A-1", "big": "x" * 30, "n": "12"})
    query = CompiledSelect(build, marks=(MERCHANT_MARK, CURRENCY_MARK))

    [row] = query.rows(merchant.pk, payment.currency)

    assert row.metadata == {"order": "A-1", "big": "x" * 30, "n": "12"}
    assert any(function.__name__ == "from_db_value" and not hasattr(function, "__self__")
               for _, functions, _ in query.compiled().converters for function in functions)
