"""The consumer of docs/examples/kafka_consumer.py (the file itself, loaded from docs/) against the
bundled broker, with the relay publishing the events of real payments: every event once, in order
per payment, amounts as Decimal, offsets committed, and a duplicate dropped by its eventId."""

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from pgi.events.models import OutboxEvent
from pgi.events.relay import Relay
from refunds.services import refund_claim, refund_create, refund_send

from .conftest import processed
from .test_relay import all_sent, running, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "kafka_consumer.py"

pytestmark = pytest.mark.django_db(transaction=True)


def load_example():
    spec = importlib.util.spec_from_file_location("kafka_consumer_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def topic(settings):
    """A payment-events topic of this test's own on the shared broker."""
    name = f"payment-events.test-{uuid.uuid4().hex[:10]}"
    settings.PGI_EVENTS = {
        **settings.PGI_EVENTS,
        "payment_events_topic": name,
        "notifications_topic": f"{name}.notifications",
        "idle_seconds": 0.05,
        "lock_poll_seconds": 0.2,
    }
    return name


@pytest.fixture
def published(kafka_bootstrap, topic, principal):
    """Payments completed, declined and refunded through the services, published by the relay."""
    completed = processed(principal, amount="1249.99")
    declined = processed(principal, amount="0.10", from_account="acct-0051")
    refunded = processed(principal, amount="50.00")
    refund = refund_create(payment_id=refunded.id, amount=Decimal("20.00"), principal=principal)
    assert refund_claim(refund.id)
    refund_send(refund_id=refund.id)  # what the refunds worker does
    with running(Relay(name="relay-for-the-example")):
        wait_until(all_sent, timeout=30, what="every event published")
    rows = list(OutboxEvent.objects.filter(topic=topic).order_by("id"))
    assert {row.key for row in rows} == {completed.id, declined.id, refunded.id}
    return rows


def assigned_consumer(example, bootstrap: str, topic: str, group: str) -> Consumer:
    """The example's configuration, with assign() instead of subscribe(): groups join slowly on the
    bundled broker. Offsets still come from, and are committed to, the group."""
    consumer = Consumer(example.consumer_config(bootstrap, group))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    return consumer


def run_example(example, consumer, seen, *, until: int, settle: float = 1.0) -> list[dict]:
    handled: list[dict] = []
    deadline, quiet_from = time.monotonic() + 30, None

    def stop() -> bool:
        nonlocal quiet_from
        if len(handled) >= until and quiet_from is None:
            quiet_from = time.monotonic()
        return time.monotonic() > deadline or (quiet_from is not None and time.monotonic() - quiet_from > settle)

    example.consume(consumer, seen=seen, handle=handled.append, stop=stop, poll_seconds=0.2)
    return handled


def test_the_example_consumer_processes_each_event_once_in_order_and_commits_its_offsets(
    kafka_bootstrap, topic, published, tmp_path
):
    example = load_example()
    seen = example.SeenEvents(str(tmp_path / "seen.sqlite3"))
    group = f"example-{uuid.uuid4().hex[:8]}"

    consumer = assigned_consumer(example, kafka_bootstrap, topic, group)
    try:
        handled = run_example(example, consumer, seen, until=len(published))
        positions = consumer.position(consumer.assignment())
    finally:
        consumer.close()

    assert sorted(event["eventId"] for event in handled) == sorted(str(row.event_id) for row in published)
    by_payment = defaultdict(list)
    for event in handled:
        by_payment[event["paymentId"]].append(event["eventId"])
    for payment_id, event_ids in by_payment.items():
        assert event_ids == [str(row.event_id) for row in published if row.key == payment_id]
    amounts = {(e["event"], e["details"]["amount"]) for e in handled if e["event"] in ("PAYMENT_PROCESSED", "REFUND_COMPLETED")}
    assert amounts >= {("PAYMENT_PROCESSED", Decimal("1249.99")), ("REFUND_COMPLETED", Decimal("20.00"))}
    assert all(isinstance(e["details"]["amount"], Decimal) for e in handled)

    # Committed: the group's offsets are where the consumer stopped.
    check = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        committed = check.committed([TopicPartition(topic, p.partition) for p in positions], timeout=10)
    finally:
        check.close()
    assert {(p.partition, p.offset) for p in committed} == {(p.partition, p.offset) for p in positions}


def test_the_example_resumes_after_its_commits_and_drops_an_event_published_again_by_its_event_id(
    kafka_bootstrap, topic, published, tmp_path
):
    example = load_example()
    seen = example.SeenEvents(str(tmp_path / "seen.sqlite3"))
    group = f"example-{uuid.uuid4().hex[:8]}"
    first = assigned_consumer(example, kafka_bootstrap, topic, group)
    try:
        assert len(run_example(example, first, seen, until=len(published))) == len(published)
        before = {p.partition: max(p.offset, 0) for p in first.position(first.assignment())}
    finally:
        first.close()

    # The relay publishes two rows again, as after a crash between publishing and marking.
    again = [published[0], published[-1]]
    OutboxEvent.objects.filter(pk__in=[row.pk for row in again]).update(sent_at=None)
    with running(Relay(name="relay-again")):
        wait_until(all_sent, timeout=30, what="the rows published again")

    # Resumed after its commits: a consumer of the same group, with a fresh record of eventIds,
    # gets only the two messages sent again.
    resumed = assigned_consumer(example, kafka_bootstrap, topic, group)
    try:
        handled = run_example(example, resumed, example.SeenEvents(str(tmp_path / "fresh.sqlite3")), until=2)
    finally:
        resumed.close()
    assert sorted(event["eventId"] for event in handled) == sorted(str(row.event_id) for row in again)

    # Dropped by eventId: a new group reads every message, the two sent again included, and the
    # record of the first run lets none of them be processed twice.
    rereading = assigned_consumer(example, kafka_bootstrap, topic, f"{group}-new")
    try:
        handled = run_example(example, rereading, seen, until=0, settle=3.0)
        read = {p.partition: max(p.offset, 0) for p in rereading.position(rereading.assignment())}  # -1001: none
    finally:
        rereading.close()
    assert handled == []
    assert sum(read.values()) == sum(before.values()) + len(again) == len(published) + len(again)
    assert seen.db.execute("SELECT count(*) FROM seen_event").fetchone()[0] == len(published)


@pytest.mark.slow
def test_the_example_script_joins_its_group_and_prints_every_event(kafka_bootstrap, topic, published, tmp_path):
    """The file as a program: subscribe() and a real group join (about 25 s on the bundled broker)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--group", f"example-{uuid.uuid4().hex[:8]}", "--topic", topic,
         "--seen-db", str(tmp_path / "seen.sqlite3"), "--max-events", str(len(published))],
        env=env, capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == len(published)
    expected = {f"{row.key} {row.event_type} {row.payload['details']['status']}" for row in published}
    assert {" ".join(line.split()[:3]) for line in lines} == expected
    assert any(line.endswith(" 1249.99 USD") for line in lines)
