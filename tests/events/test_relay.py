"""The outbox relay against the bundled broker: order per key, marks from delivery reports only,
an unreachable broker, a broker killed while 200 payments are taken, two relays at once, and a relay
killed between publishing and marking."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from django.conf import settings
from django.db import connection, transaction

from pgi.events import relay as relay_module
from pgi.events.models import OutboxEvent
from pgi.events.relay import FileLeaderLock, Relay, message_bytes
from pgi.events.selectors import outbox_unsent, relay_lag

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def topic():
    return f"test.relay.{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def quick_relay(settings):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "idle_seconds": 0.05, "lock_poll_seconds": 0.2}


def outbox_rows(topic: str, *, keys: list[str], per_key: int) -> list[OutboxEvent]:
    """Rows interleaved across keys, as concurrent payments would write them."""
    return [
        OutboxEvent.objects.create(
            topic=topic, key=key, event_type="payment.completed", payload={"paymentId": key, "seq": seq, "amount": "50.00"}
        )
        for seq in range(per_key)
        for key in keys
    ]


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def all_sent() -> bool:
    return not OutboxEvent.objects.filter(sent_at__isnull=True).exists()


def consumed(bootstrap: str, topic: str, *, expected: int, timeout: float = 30, settle: float = 0.0) -> list[SimpleNamespace]:
    """Every message of `topic` from the beginning, by assign() (consumer groups join slowly on
    Tansu): at least `expected` of them, then whatever else arrives within `settle` seconds."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + timeout
        partitions = []
        while not partitions and time.monotonic() < deadline:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            partitions = sorted(metadata.partitions) if metadata and not metadata.error else []
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages = []
        settle_until = None
        while time.monotonic() < (settle_until or deadline):
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                messages.append(
                    SimpleNamespace(
                        key=message.key().decode(),
                        value=message.value(),
                        headers={name: value.decode() for name, value in message.headers() or []},
                        partition=message.partition(),
                    )
                )
            if len(messages) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle
        return messages
    finally:
        consumer.close()


@contextlib.contextmanager
def running(relay: Relay):
    thread = threading.Thread(target=relay.run, name=relay.name, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stop()
        thread.join(30)
        assert not thread.is_alive(), f"{relay.name} did not stop"


def test_message_bytes_is_the_body_when_the_row_has_one_else_the_payload_as_json():
    assert message_bytes(SimpleNamespace(body='{"amount": 50.00}', payload={"amount": 50.0})) == b'{"amount": 50.00}'
    assert message_bytes(SimpleNamespace(payload={"paymentId": "pay_1", "note": "café"})) == (
        '{"paymentId":"pay_1","note":"café"}'.encode()
    )


def test_the_read_during_a_batch_leaves_out_the_rows_in_flight_and_finds_a_lower_id_committed_late(topic):
    rows = outbox_rows(topic, keys=["pay_a"], per_key=6)
    # The batch in flight is rows 0, 2 and 3: row 1 committed after that batch was read.
    in_flight = [rows[0].id, rows[2].id, rows[3].id]

    following = outbox_unsent(limit=2, excluding=in_flight)

    assert [row.id for row in following] == [rows[1].id, rows[4].id]
    assert following[0].payload == rows[1].payload and following[0].body == ""  # no body: the payload


def test_rows_are_published_in_order_per_key_and_marked_sent(kafka_bootstrap, topic):
    rows = outbox_rows(topic, keys=["pay_a", "pay_b", "pay_c"], per_key=10)

    with running(Relay()):
        wait_until(all_sent, timeout=30, what="every row marked sent")
        messages = consumed(kafka_bootstrap, topic, expected=len(rows), settle=0.5)

    assert len(messages) == len(rows)
    by_key = defaultdict(list)
    for message in messages:
        by_key[message.key].append(message.headers["eventId"])
    for key in ("pay_a", "pay_b", "pay_c"):
        assert by_key[key] == [str(row.event_id) for row in rows if row.key == key]
    marked = OutboxEvent.objects.filter(topic=topic)
    assert {(row.attempts, row.last_error) for row in marked} == {(1, "")}
    assert relay_lag() == (0, 0.0)


def test_a_message_carries_its_key_event_id_header_and_the_payload(kafka_bootstrap, topic):
    row = OutboxEvent.objects.create(topic=topic, key="pay_42", event_type="payment.refunded", payload={"paymentId": "pay_42"})

    with running(Relay()):
        wait_until(all_sent, timeout=30, what="the row marked sent")
    (message,) = consumed(kafka_bootstrap, topic, expected=1, settle=0.5)

    assert message.key == "pay_42"
    assert message.headers == {"eventId": str(row.event_id), "eventType": "payment.refunded"}
    assert json.loads(message.value) == {"paymentId": "pay_42"}


def test_the_topic_is_created_with_the_configured_partitions(kafka_bootstrap, topic, settings):
    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "topic_partitions": 5}
    outbox_rows(topic, keys=["pay_a"], per_key=1)

    with running(Relay()):
        wait_until(all_sent, timeout=30, what="the row marked sent")

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "unused"})
    try:
        assert len(consumer.list_topics(topic, timeout=5).topics[topic].partitions) == 5
    finally:
        consumer.close()


def test_an_unreachable_broker_leaves_rows_unsent_and_they_are_published_once_it_answers(
    kafka_bootstrap, topic, settings, monkeypatch
):
    monkeypatch.setattr(relay_module, "ADMIN_TIMEOUT_SECONDS", 1.0)
    rows = outbox_rows(topic, keys=["pay_a", "pay_b"], per_key=5)
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens

    with running(Relay(name="relay-to-nowhere")) as relay:
        wait_until(relay.leading.is_set, timeout=10, what="the relay leading")
        time.sleep(3)
        assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == len(rows)
        count, age = relay_lag()
        assert count == len(rows) and age > 0

    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_bootstrap
    with running(Relay()):
        wait_until(all_sent, timeout=30, what="every row marked sent")
    messages = consumed(kafka_bootstrap, topic, expected=len(rows), settle=0.5)

    assert sorted(m.headers["eventId"] for m in messages) == sorted(str(row.event_id) for row in rows)


def test_of_two_relays_only_the_leader_publishes_and_the_other_takes_over_when_it_stops(kafka_bootstrap, topic):
    first, second = Relay(name="relay-1"), Relay(name="relay-2")
    with running(first), running(second):
        wait_until(lambda: first.leading.is_set() or second.leading.is_set(), timeout=10, what="a leader")
        leader, standby = (first, second) if first.leading.is_set() else (second, first)
        rows = outbox_rows(topic, keys=["pay_a", "pay_b", "pay_c", "pay_d"], per_key=10)
        wait_until(all_sent, timeout=30, what="every row marked sent")
        assert not standby.leading.is_set()
        assert (leader.delivered_count, standby.delivered_count) == (len(rows), 0)

        leader.stop()
        wait_until(standby.leading.is_set, timeout=5, what="the standby taking over")
        later = outbox_rows(topic, keys=["pay_a", "pay_e"], per_key=5)
        wait_until(all_sent, timeout=30, what="the later rows marked sent")
        assert standby.delivered_count == len(later)

    messages = consumed(kafka_bootstrap, topic, expected=len(rows) + len(later), settle=1.0)
    assert Counter(m.headers["eventId"] for m in messages) == Counter(str(row.event_id) for row in rows + later)


def test_a_lock_file_admits_one_holder_and_frees_on_close(tmp_path):
    first, second = FileLeaderLock(tmp_path / "relay.lock"), FileLeaderLock(tmp_path / "relay.lock")

    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_an_advisory_lock_admits_one_holder_and_is_lost_with_its_connection():
    from pgi.events.relay import PostgresLeaderLock

    first, second = PostgresLeaderLock(), PostgresLeaderLock()
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire()
        with connection.cursor() as cursor:  # the leader's session ends, as when its host dies
            cursor.execute("SELECT pg_terminate_backend(%s)", [first._connection.connection.info.backend_pid])
        assert not first.still_held()
        wait_until(second.try_acquire, timeout=5, what="the lock free again")
    finally:
        first.release()
        second.release()


def relay_subprocess(bootstrap: str, log_path: Path) -> subprocess.Popen:
    """`manage.py relay_events` on the test database and broker."""
    db = settings.DATABASES["default"]
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        PGI_EVENTS_IDLE_SECONDS="0.05",
        PGI_EVENTS_LOCK_POLL_SECONDS="0.2",
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "relay_events"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def test_a_relay_killed_between_publishing_and_marking_loses_nothing_and_duplicates_carry_their_event_id(
    kafka_bootstrap, topic, tmp_path
):
    rows = outbox_rows(topic, keys=["pay_a", "pay_b", "pay_c"], per_key=5)
    log_path = tmp_path / "relay.log"
    table = OutboxEvent._meta.db_table

    # The outbox stays readable but its rows cannot be updated: the relay publishes, then waits to mark.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        process = relay_subprocess(kafka_bootstrap, log_path)
        try:
            published = consumed(kafka_bootstrap, topic, expected=len(rows), timeout=60)
            assert len(published) == len(rows), log_path.read_text()
            wait_until(
                lambda: cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE %s",
                    [f"UPDATE %{table}%"],
                ) and cursor.fetchone()[0] == 1,
                timeout=10,
                what="the relay waiting to mark its rows",
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        # A killed client's statement still runs to its end in PostgreSQL; end it, as a crash would.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE %s",
            [f"UPDATE %{table}%"],
        )
        assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == len(rows)

    with running(Relay(name="relay-after-the-crash")):
        wait_until(all_sent, timeout=30, what="every row marked sent after the crash")

    messages = consumed(kafka_bootstrap, topic, expected=2 * len(rows), settle=1.0)
    assert Counter(m.headers["eventId"] for m in messages) == Counter({str(row.event_id): 2 for row in rows})
    by_key = defaultdict(list)
    for message in messages:
        by_key[message.key].append(message.headers["eventId"])
    for key, ids in by_key.items():  # each key's events twice over, each time in order
        in_order = [str(row.event_id) for row in rows if row.key == key]
        assert ids == in_order + in_order


def test_a_broker_that_stops_and_comes_back_gets_the_rows_written_meanwhile(topic, settings, tmp_path):
    from pgi.embedded_broker import free_port, start_broker

    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "delivery_timeout_seconds": 2}
    port = free_port()
    broker, bootstrap = start_broker(port=port, log_path=tmp_path / "broker.log")
    settings.KAFKA_BOOTSTRAP_SERVERS = bootstrap
    try:
        with running(Relay()):
            before = outbox_rows(topic, keys=["pay_a"], per_key=3)
            wait_until(all_sent, timeout=30, what="the first rows marked sent")
            broker.terminate()
            broker.wait(10)
            meanwhile = outbox_rows(topic, keys=["pay_a", "pay_b"], per_key=3)
            time.sleep(3)
            assert set(OutboxEvent.objects.filter(sent_at__isnull=True)) == set(meanwhile)
            broker, _ = start_broker(port=port, log_path=tmp_path / "broker.log")  # memory only: a new, empty broker
            wait_until(all_sent, timeout=30, what="the rows written while the broker was down marked sent")
        messages = consumed(bootstrap, topic, expected=len(meanwhile), settle=1.0)
    finally:
        broker.terminate()
        broker.wait(10)

    assert len(before) == 3
    by_key = defaultdict(list)
    for message in messages:
        by_key[message.key].append(message.headers["eventId"])
    for key in ("pay_a", "pay_b"):
        assert by_key[key] == [str(row.event_id) for row in meanwhile if row.key == key]
    assert {row.attempts for row in OutboxEvent.objects.filter(id__in=[r.id for r in meanwhile])} != {0}


def test_a_broker_killed_while_200_payments_are_taken_loses_no_event_and_the_new_one_gets_every_unsent_event_in_order(
    principal, settings, tmp_path
):
    """The broker is killed (SIGKILL) after the first 80 payments and comes back, memory only, so
    empty, on the same port after 140. What was marked sent before the kill was acknowledged by the
    old broker; every other row must reach the new one, each payment's events in their order; a
    duplicate is the same message again, under the same eventId."""
    from pgi.embedded_broker import free_port, start_broker

    from .conftest import processed

    settings.PGI_EVENTS = {**settings.PGI_EVENTS, "delivery_timeout_seconds": 2}
    port = free_port()
    broker, bootstrap = start_broker(port=port, log_path=tmp_path / "broker.log")
    settings.KAFKA_BOOTSTRAP_SERVERS = bootstrap
    payments = []
    try:
        with running(Relay(name="relay-through-the-outage")):
            for n in range(200):
                if n == 80:
                    wait_until(lambda: OutboxEvent.objects.filter(sent_at__isnull=False).exists(), timeout=30, what="some rows sent")
                    broker.kill()
                    broker.wait(10)
                if n == 140:
                    # The batch in flight at the kill is over once a row counts a failed attempt:
                    # from then on nothing is marked sent until the new broker answers.
                    wait_until(
                        lambda: OutboxEvent.objects.filter(sent_at__isnull=True, attempts__gt=0).exists(),
                        timeout=30,
                        what="a delivery failing while the broker is down",
                    )
                    sent_before = set(OutboxEvent.objects.filter(sent_at__isnull=False).values_list("event_id", flat=True))
                    broker, _ = start_broker(port=port, log_path=tmp_path / "broker.log")
                payments.append(processed(principal, from_account=f"account{n % 7}"))
            wait_until(all_sent, timeout=90, what="every row marked sent after the broker came back")
        rows = list(OutboxEvent.objects.order_by("id"))
        expected = [row for row in rows if row.event_id not in sent_before]
        messages = [
            message
            for name in (settings.PGI_EVENTS["payment_events_topic"], settings.PGI_EVENTS["notifications_topic"])
            for message in consumed(bootstrap, name, expected=sum(r.topic == name for r in expected), timeout=60, settle=2.0)
        ]
    finally:
        broker.kill()
        broker.wait(10)

    # Nothing lost: every payment has its events, every row ended sent.
    assert {row.key for row in rows} == {payment.id for payment in payments}
    assert len(sent_before) > 0 and len(expected) > 0
    assert all(row.sent_at for row in rows)
    # The new broker holds exactly the rows not acknowledged before the kill, each one byte for byte.
    by_event_id = {str(row.event_id): row for row in rows}
    received = Counter(m.headers["eventId"] for m in messages)
    assert set(received) == {str(row.event_id) for row in expected}
    for message in messages:
        row = by_event_id[message.headers["eventId"]]
        assert (message.key, message.value) == (row.key, message_bytes(row))
    # Each payment's events, duplicates dropped by eventId, arrive in the order they were written,
    # from one partition per topic.
    seen, by_key, partitions = set(), defaultdict(list), defaultdict(set)
    for message in messages:
        row = by_event_id[message.headers["eventId"]]
        partitions[(row.topic, row.key)].add(message.partition)
        if message.headers["eventId"] not in seen:
            seen.add(message.headers["eventId"])
            by_key[(row.topic, row.key)].append(row.id)
    assert all(len(found) == 1 for found in partitions.values())
    for (name, key), ids in by_key.items():
        assert ids == [row.id for row in expected if (row.topic, row.key) == (name, key)], (name, key)
    print(f"\n{len(rows)} rows; {len(sent_before)} acknowledged before the kill; {len(messages)} messages in the new broker,"
          f" {sum(n - 1 for n in received.values())} duplicates")


def test_sigterm_stops_the_relay_command_cleanly_after_it_published(kafka_bootstrap, topic, tmp_path):
    rows = outbox_rows(topic, keys=["pay_a"], per_key=3)
    process = relay_subprocess(kafka_bootstrap, tmp_path / "relay.log")
    try:
        wait_until(all_sent, timeout=30, what="the rows marked sent")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, (tmp_path / "relay.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert len(consumed(kafka_bootstrap, topic, expected=len(rows), settle=0.5)) == len(rows)
